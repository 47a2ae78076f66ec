//! `OxError`: what can go wrong in one OX SOAP call, sorted so that callers can branch on it
//! (`kind()`, `is_retryable()`, `is_not_found()`, `is_conflict()`), and the parsed SOAP fault.

use std::fmt;

/// The exception named in a fault's `detail` (OX's Java exception class), or the class of a
/// fault without detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum FaultKind {
    NoSuchContext,
    NoSuchUser,
    NoSuchGroup,
    NoSuchResource,
    InvalidData,
    InvalidCredentials,
    Storage,
    DatabaseUpdate,
    Remote,
    ContextExists,
    UserExists,
    DuplicateExtension,
    NoSuchDatabase,
    NoSuchFilestore,
    NoSuchReason,
    OxContext,
    /// `soap:Client` without detail: the server could not read the request (unknown element,
    /// unknown operation, malformed XML).
    Client,
    /// Any other fault.
    Other,
}

impl FaultKind {
    /// Every kind that has a detail element, with that element's name.
    const DETAIL_NAMES: [(FaultKind, &'static str); 16] = [
        (FaultKind::NoSuchContext, "NoSuchContextException"),
        (FaultKind::NoSuchUser, "NoSuchUserException"),
        (FaultKind::NoSuchGroup, "NoSuchGroupException"),
        (FaultKind::NoSuchResource, "NoSuchResourceException"),
        (FaultKind::InvalidData, "InvalidDataException"),
        (FaultKind::InvalidCredentials, "InvalidCredentialsException"),
        (FaultKind::Storage, "StorageException"),
        (FaultKind::DatabaseUpdate, "DatabaseUpdateException"),
        (FaultKind::Remote, "RemoteException"),
        (FaultKind::ContextExists, "ContextExistsException"),
        (FaultKind::UserExists, "UserExistsException"),
        (FaultKind::DuplicateExtension, "DuplicateExtensionException"),
        (FaultKind::NoSuchDatabase, "NoSuchDatabaseException"),
        (FaultKind::NoSuchFilestore, "NoSuchFilestoreException"),
        (FaultKind::NoSuchReason, "NoSuchReasonException"),
        (FaultKind::OxContext, "OXContextException"),
    ];

    /// The kind for a detail element name (`NoSuchUserException` → [`FaultKind::NoSuchUser`]).
    pub fn from_detail_name(name: &str) -> FaultKind {
        Self::DETAIL_NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map_or(FaultKind::Other, |(k, _)| *k)
    }

    /// The detail element name, `None` for [`FaultKind::Client`] and [`FaultKind::Other`].
    pub fn detail_name(self) -> Option<&'static str> {
        Self::DETAIL_NAMES
            .iter()
            .find(|(k, _)| *k == self)
            .map(|(_, n)| *n)
    }

    /// A short stable name, usable as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::NoSuchContext => "no_such_context",
            FaultKind::NoSuchUser => "no_such_user",
            FaultKind::NoSuchGroup => "no_such_group",
            FaultKind::NoSuchResource => "no_such_resource",
            FaultKind::InvalidData => "invalid_data",
            FaultKind::InvalidCredentials => "invalid_credentials",
            FaultKind::Storage => "storage",
            FaultKind::DatabaseUpdate => "database_update",
            FaultKind::Remote => "remote",
            FaultKind::ContextExists => "context_exists",
            FaultKind::UserExists => "user_exists",
            FaultKind::DuplicateExtension => "duplicate_extension",
            FaultKind::NoSuchDatabase => "no_such_database",
            FaultKind::NoSuchFilestore => "no_such_filestore",
            FaultKind::NoSuchReason => "no_such_reason",
            FaultKind::OxContext => "ox_context",
            FaultKind::Client => "client",
            FaultKind::Other => "other",
        }
    }

    /// Transient server-side failures (`ox-soap.md` §8.2): worth a bounded retry.
    pub fn is_retryable(self) -> bool {
        matches!(self, FaultKind::Storage | FaultKind::DatabaseUpdate)
    }
}

/// A parsed `soap:Fault`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Local part of `faultcode`: `Server` for OX business exceptions, `Client` when the
    /// request could not be read.
    pub code: String,
    /// `faultstring` without the `; exceptionId …` suffix.
    pub message: String,
    /// The `exceptionId` OX appended, if any (e.g. `1170523631-7`).
    pub exception_id: Option<String>,
    pub kind: FaultKind,
}

impl Fault {
    /// Splits OX's `"<message>; exceptionId <id>"`.
    pub fn split_fault_string(faultstring: &str) -> (&str, Option<&str>) {
        match faultstring.rfind("; exceptionId ") {
            Some(i) => (
                &faultstring[..i],
                Some(faultstring[i + "; exceptionId ".len()..].trim()),
            ),
            None => (faultstring, None),
        }
    }

    /// The not-found rule of `ox-soap.md` §8.2, robust against version drift: the detail names
    /// a `NoSuch{Context,User,Group,Resource}Exception`, or the text says so.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.kind,
            FaultKind::NoSuchContext
                | FaultKind::NoSuchUser
                | FaultKind::NoSuchGroup
                | FaultKind::NoSuchResource
        ) || self.message.starts_with("No such ")
            || self
                .message
                .starts_with("com.openexchange.admin.rmi.exceptions.NoSuchObjectException")
            || is_context_missing_text(&self.message)
    }

    /// "Already exists/used" conflicts (duplicate name, display name, mail address, context).
    pub fn is_conflict(&self) -> bool {
        match self.kind {
            FaultKind::ContextExists | FaultKind::UserExists => true,
            FaultKind::InvalidData => {
                self.message.contains("already exists")
                    || self.message.contains("already used")
                    || self.message.contains("Already assigned")
            }
            _ => false,
        }
    }
}

/// `Context 10 does not exist` or `The context 10 does not exist!`.
fn is_context_missing_text(message: &str) -> bool {
    let rest = message
        .strip_prefix("Context ")
        .or_else(|| message.strip_prefix("The context "));
    match rest {
        Some(rest) => {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            digits > 0 && rest[digits..].starts_with(" does not exist")
        }
        None => false,
    }
}

/// What kind of failure an [`OxError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OxErrorKind {
    /// The TCP/TLS connection could not be established.
    Connect,
    /// The call did not complete within the configured timeout.
    Timeout,
    /// The connection broke while sending or receiving.
    Transport,
    /// A non-2xx HTTP status without a SOAP fault in the body.
    Http(u16),
    /// A 2xx answer that is not a SOAP envelope (an HTML page, garbage).
    NotSoap,
    /// A SOAP envelope without the expected content (missing `<op>Response`, bad value).
    Decode,
    /// OX answered with a SOAP fault.
    Fault(FaultKind),
    /// The client was configured wrongly (bad server URL, TLS setup).
    Config,
    /// The request was not sent: a field has a character XML 1.0 forbids (OX would refuse the
    /// request as not well-formed). The detail names the field.
    InvalidValue,
}

/// An error of one OX SOAP call (boxed: results stay small on the happy path).
#[derive(Debug)]
pub struct OxError {
    inner: Box<Repr>,
}

#[derive(Debug)]
struct Repr {
    kind: OxErrorKind,
    /// `Service.operation`, e.g. `OXUserService.create` (empty for configuration errors).
    operation: String,
    fault: Option<Fault>,
    detail: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl OxError {
    pub(crate) fn new(kind: OxErrorKind, operation: &str, detail: impl Into<String>) -> OxError {
        OxError {
            inner: Box::new(Repr {
                kind,
                operation: operation.to_string(),
                fault: None,
                detail: detail.into(),
                source: None,
            }),
        }
    }

    pub(crate) fn with_boxed_source(
        mut self,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> OxError {
        self.inner.source = source;
        self
    }

    pub(crate) fn from_fault(operation: &str, fault: Fault) -> OxError {
        OxError {
            inner: Box::new(Repr {
                kind: OxErrorKind::Fault(fault.kind),
                operation: operation.to_string(),
                detail: String::new(),
                fault: Some(fault),
                source: None,
            }),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> OxErrorKind {
        self.inner.kind
    }

    /// A bounded label for metrics and logs: the fault kind, or how the call failed.
    pub fn label(&self) -> &'static str {
        match self.kind() {
            OxErrorKind::Fault(kind) => kind.as_str(),
            OxErrorKind::Connect => "connect",
            OxErrorKind::Timeout => "timeout",
            OxErrorKind::Transport => "transport",
            OxErrorKind::Http(_) => "http",
            OxErrorKind::NotSoap => "not_soap",
            OxErrorKind::Decode => "decode",
            OxErrorKind::Config => "config",
            OxErrorKind::InvalidValue => "invalid_value",
        }
    }

    /// `Service.operation` of the failed call.
    pub fn operation(&self) -> &str {
        &self.inner.operation
    }

    /// The SOAP fault, when OX answered with one.
    pub fn fault(&self) -> Option<&Fault> {
        self.inner.fault.as_ref()
    }

    /// The fault text without `; exceptionId …`, when OX answered with a fault.
    pub fn fault_text(&self) -> Option<&str> {
        self.inner.fault.as_ref().map(|f| f.message.as_str())
    }

    /// Whether a bounded retry can help: connection problems, timeouts, HTTP 5xx/429 without a
    /// fault, and OX's transient faults (Storage, DatabaseUpdate). Everything else is permanent.
    pub fn is_retryable(&self) -> bool {
        match self.inner.kind {
            OxErrorKind::Connect | OxErrorKind::Timeout | OxErrorKind::Transport => true,
            OxErrorKind::Http(status) => status >= 500 || status == 429,
            OxErrorKind::Fault(kind) => kind.is_retryable(),
            OxErrorKind::NotSoap
            | OxErrorKind::Decode
            | OxErrorKind::Config
            | OxErrorKind::InvalidValue => false,
        }
    }

    /// The object (context, user, group, resource) does not exist (`ox-soap.md` §8.2).
    pub fn is_not_found(&self) -> bool {
        self.inner.fault.as_ref().is_some_and(Fault::is_not_found)
    }

    /// A uniqueness conflict (name, display name, mail address, context id already taken).
    pub fn is_conflict(&self) -> bool {
        self.inner.fault.as_ref().is_some_and(Fault::is_conflict)
    }

    /// The credentials were rejected (or the context of a context-admin call does not exist).
    pub fn is_auth(&self) -> bool {
        self.inner.kind == OxErrorKind::Fault(FaultKind::InvalidCredentials)
    }

    /// For a refusal that comes from OX's configuration: the OX property that switches it and
    /// what to do on the UCS side instead. Part of [`fmt::Display`].
    pub fn configuration_hint(&self) -> Option<&'static str> {
        let fault = self.inner.fault.as_ref()?;
        configuration_hint(self.inner.operation.as_str(), &fault.message)
    }
}

/// The OX property behind a configuration refusal (`docs/operations.md`, "OX refuses a
/// change"), and the UCS-side alternative.
fn configuration_hint(operation: &str, message: &str) -> Option<&'static str> {
    let service = operation.split('.').next().unwrap_or_default();
    let hint = match message {
        "Changing username is disabled!" => {
            "OX refuses to rename users: set USERNAME_CHANGEABLE=true in OX's \
             AdminUser.properties and restart OX, then `queue retry`; or skip the change and \
             keep the UCS username (new installations can set OX_USER_IDENTIFIER=entryUUID, \
             whose OX names never change)"
        }
        "primary mail must not be changed" => {
            "OX refuses to change primary mail addresses: set PRIMARY_MAIL_UNCHANGEABLE=false \
             (OX's shipped value) in OX's AdminUser.properties and restart OX, then `queue \
             retry`; or keep mailPrimaryAddress in UCS and add the new address as \
             mailAlternativeAddress"
        }
        "The displayname is already used" => {
            "OX refuses a display name another user has: set \
             com.openexchange.user.enforceUniqueDisplayName=false in OX's user.properties (an \
             OX Connector prerequisite) and restart OX, then `queue retry`; or give the user a \
             unique display name in UCS"
        }
        m if m.starts_with("Illegal chars: ") => match service {
            "OXGroupService" => {
                "OX refuses characters in group names: set \
                 CHECK_GROUP_UID_FOR_NOT_ALLOWED_CHARS=false in OX's Group.properties and \
                 restart OX, then `queue retry`; or rename the group in UCS (new installations \
                 can set OX_GROUP_IDENTIFIER=entryUUID)"
            }
            "OXResourceService" => {
                "OX refuses characters in resource names: set \
                 CHECK_RES_UID_FOR_NOT_ALLOWED_CHARS=false in OX's Resource.properties and \
                 restart OX, then `queue retry`; or recreate the resource in UCS with an ASCII \
                 name"
            }
            _ => {
                "OX refuses characters in user names: set \
                 CHECK_USER_UID_FOR_NOT_ALLOWED_CHARS=false in OX's AdminUser.properties and \
                 restart OX, then `queue retry`; or use an ASCII username in UCS (new \
                 installations can set OX_USER_IDENTIFIER=entryUUID)"
            }
        },
        _ => return None,
    };
    Some(hint)
}

impl fmt::Display for OxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.inner.operation.is_empty() {
            "ox client"
        } else {
            self.inner.operation.as_str()
        };
        match (&self.inner.kind, &self.inner.fault) {
            (OxErrorKind::Fault(_), Some(fault)) => {
                write!(f, "{op}: {} fault: {}", fault.kind.as_str(), fault.message)?;
                match configuration_hint(op, &fault.message) {
                    Some(hint) => write!(f, " ({hint})"),
                    None => Ok(()),
                }
            }
            (OxErrorKind::Connect, _) => {
                write!(f, "{op}: cannot connect to OX: {}", self.inner.detail)
            }
            (OxErrorKind::Timeout, _) => write!(f, "{op}: OX did not answer in time"),
            (OxErrorKind::Transport, _) => {
                write!(f, "{op}: connection to OX failed: {}", self.inner.detail)
            }
            (OxErrorKind::Http(status), _) => {
                write!(f, "{op}: OX answered HTTP {status} without a SOAP fault")
            }
            (OxErrorKind::NotSoap, _) => {
                write!(
                    f,
                    "{op}: OX answered with something that is not SOAP: {}",
                    self.inner.detail
                )
            }
            (OxErrorKind::Decode, _) => {
                write!(
                    f,
                    "{op}: cannot decode the OX answer: {}",
                    self.inner.detail
                )
            }
            (OxErrorKind::Config, _) => {
                write!(f, "{op}: invalid configuration: {}", self.inner.detail)
            }
            (OxErrorKind::InvalidValue, _) => write!(f, "{op}: not sent: {}", self.inner.detail),
            (OxErrorKind::Fault(kind), None) => write!(f, "{op}: {} fault", kind.as_str()),
        }
    }
}

impl std::error::Error for OxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(kind: FaultKind, message: &str) -> Fault {
        Fault {
            code: "Server".into(),
            message: message.into(),
            exception_id: None,
            kind,
        }
    }

    #[test]
    fn exception_id_suffix_is_split_off() {
        assert_eq!(
            Fault::split_fault_string("Context 10 does not exist; exceptionId -225208343-74"),
            ("Context 10 does not exist", Some("-225208343-74"))
        );
        assert_eq!(Fault::split_fault_string("plain"), ("plain", None));
    }

    #[test]
    fn not_found_is_recognised_by_detail_or_by_text() {
        assert!(fault(FaultKind::NoSuchGroup, "No such group").is_not_found());
        assert!(fault(FaultKind::Other, "Context 10 does not exist").is_not_found());
        assert!(fault(FaultKind::Other, "The context 7 does not exist!").is_not_found());
        assert!(fault(
            FaultKind::Other,
            "com.openexchange.admin.rmi.exceptions.NoSuchObjectException: No such user x"
        )
        .is_not_found());
        assert!(!fault(FaultKind::InvalidData, "Context name is bad").is_not_found());
        assert!(!fault(FaultKind::Other, "Context 1x does not exist").is_not_found());
    }

    #[test]
    fn only_transient_faults_and_transport_problems_are_retryable() {
        let err = |kind| OxError::new(kind, "OXUserService.create", "");
        assert!(err(OxErrorKind::Connect).is_retryable());
        assert!(err(OxErrorKind::Timeout).is_retryable());
        assert!(err(OxErrorKind::Http(503)).is_retryable());
        assert!(!err(OxErrorKind::Http(404)).is_retryable());
        assert!(!err(OxErrorKind::NotSoap).is_retryable());
        let storage = OxError::from_fault("op", fault(FaultKind::Storage, "db down"));
        assert!(storage.is_retryable());
        let invalid =
            OxError::from_fault("op", fault(FaultKind::InvalidData, "Group already exists!"));
        assert!(!invalid.is_retryable());
        assert!(invalid.is_conflict());
    }

    #[test]
    fn configuration_refusals_name_the_property_and_the_ucs_alternative() {
        let refusal = |op, text| OxError::from_fault(op, fault(FaultKind::InvalidData, text));
        let cases = [
            (
                "OXUserService.change",
                "Changing username is disabled!",
                "USERNAME_CHANGEABLE=true",
            ),
            (
                "OXUserService.change",
                "primary mail must not be changed",
                "PRIMARY_MAIL_UNCHANGEABLE=false",
            ),
            (
                "OXUserService.create",
                "The displayname is already used",
                "enforceUniqueDisplayName=false",
            ),
            (
                "OXGroupService.create",
                "Illegal chars: \"ü\"",
                "CHECK_GROUP_UID_FOR_NOT_ALLOWED_CHARS",
            ),
            (
                "OXResourceService.create",
                "Illegal chars: \"ü\"",
                "CHECK_RES_UID_FOR_NOT_ALLOWED_CHARS",
            ),
            (
                "OXUserService.create",
                "Illegal chars: \"ü\"",
                "CHECK_USER_UID_FOR_NOT_ALLOWED_CHARS",
            ),
        ];
        for (op, text, property) in cases {
            let err = refusal(op, text);
            let shown = err.to_string();
            assert!(shown.contains(text) && shown.contains(property), "{shown}");
            assert!(shown.contains("queue retry"), "{shown}");
        }
        assert_eq!(
            refusal(
                "OXUserService.create",
                "User x already exists in this context"
            )
            .configuration_hint(),
            None
        );
    }
}
