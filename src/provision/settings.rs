//! The original connector's App Center settings, with the same names, meanings and defaults.
//! Empty values count as unset (the original did so only for the functional-account template).

use std::path::PathBuf;
use std::time::Duration;

/// A secret string whose `Debug` never shows the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

/// How OX is provisioned.
#[derive(Debug, Clone)]
pub struct OxSettings {
    /// `OX_SOAP_SERVER`: base URL of OX (SOAP under `/webservices/`).
    pub soap_server: String,
    /// `OX_MASTER_ADMIN`.
    pub master_admin: String,
    /// `OX_MASTER_PASSWORD`; when set, kept in the credentials file's `master` entry.
    pub master_password: Option<Secret>,
    /// `DEFAULT_CONTEXT`: its admin is `oxadmin`, other contexts' admins `oxadmin-context<id>`.
    pub default_context: i32,
    /// `OX_LANGUAGE`: language of new users.
    pub language: String,
    /// `LOCAL_TIMEZONE`: time zone of new users and context admins.
    pub timezone: String,
    /// `OX_IMAP_LOGIN`: template of the IMAP login, `{}` = the user's primary mail address.
    pub imap_login: String,
    /// `OX_IMAP_SERVER`: scheme and port (and host if the user has no `mailHomeServer`).
    pub imap_server: String,
    /// `OX_SMTP_SERVER`: likewise for SMTP.
    pub smtp_server: String,
    /// `OX_USER_IDENTIFIER`: the UDM property used as OX user name.
    pub user_identifier: String,
    /// `OX_GROUP_IDENTIFIER`: the UDM property used as OX group name.
    pub group_identifier: String,
    /// `OX_FUNCTIONAL_ACCOUNT_LOGIN_TEMPLATE`.
    pub functional_account_login_template: String,
    /// `OX_CREDENTIALS_FILE`: the context admins' credentials (`contexts.json`).
    pub credentials_file: PathBuf,
    /// `DOMAINNAME`: the mail domain of context admins.
    pub domainname: String,
    /// `OX_SOAP_TIMEOUT`: how long one SOAP call may take.
    pub soap_timeout: Duration,
}

/// Defaults of the original connector.
pub mod defaults {
    pub const SOAP_SERVER: &str = "http://127.0.0.1";
    pub const MASTER_ADMIN: &str = "oxadminmaster";
    pub const DEFAULT_CONTEXT: i32 = 10;
    pub const LANGUAGE: &str = "de_DE";
    pub const TIMEZONE: &str = "Europe/Berlin";
    pub const IMAP_LOGIN: &str = "{}";
    pub const IMAP_SERVER: &str = "imap://localhost:143";
    pub const SMTP_SERVER: &str = "smtp://localhost:587";
    pub const USER_IDENTIFIER: &str = "username";
    pub const GROUP_IDENTIFIER: &str = "name";
    pub const FUNCTIONAL_ACCOUNT_LOGIN_TEMPLATE: &str = "{{fa_entry_uuid}}{{username}}";
    pub const DOMAINNAME: &str = "localhost.localdomain";
    /// Relative to the data directory.
    pub const CREDENTIALS_FILE: &str = "secrets/contexts.json";
}
