//! OXUserCopyService (copyUser) and OXSecondaryAccountService (functional accounts).

use super::*;

impl OxState {
    pub(crate) fn copy_user(
        &mut self,
        auth: Option<&Credentials>,
        user: Option<User>,
        src: Option<Context>,
        dest: Option<Context>,
    ) -> OxResult<User> {
        self.auth_master(auth)?;
        let src_id = src
            .and_then(|c| c.id)
            .ok_or_else(|| OxFault::invalid("Client sent invalid source context data object"))?;
        let dest_id = dest.and_then(|c| c.id).ok_or_else(|| {
            OxFault::invalid("Client sent invalid destination context data object")
        })?;
        for id in [src_id, dest_id] {
            if !self.contexts.contains_key(&id) {
                return Err(OxFault::new(
                    FaultKind::NoSuchContext,
                    format!("Context {id} does not exist"),
                ));
            }
        }
        let user_id = user
            .as_ref()
            .and_then(|u| u.id)
            .ok_or_else(|| OxFault::invalid("Client sent invalid user data object"))?;
        let Some(record) = self.contexts[&src_id].users.get(&user_id).cloned() else {
            return Err(OxFault::new(
                FaultKind::NoSuchUser,
                format!("No such user {user_id} in context {src_id}"),
            ));
        };
        let name = record.user.name.clone().unwrap_or_default();
        let dest_index = &self.contexts[&dest_id].index;
        if dest_index
            .user_names
            .other_than(&dest_index.name_key(&name), None)
            .is_some()
        {
            return Err(OxFault::new(
                FaultKind::UserExists,
                format!("User {name} already exists in context {dest_id}"),
            ));
        }
        let id = self.ctx_mut(dest_id).add_user(record.user, record.access);
        Ok(User::with_id(id))
    }

    // ----- OXSecondaryAccountService -----

    /// The users an account operation addresses: listed users plus members of listed groups
    /// (group 0 = all users, accepted without existence check).
    pub(super) fn account_scope(
        &self,
        ctx_id: i32,
        users: &[i32],
        groups: &[i32],
    ) -> OxResult<Vec<i32>> {
        let context = &self.contexts[&ctx_id];
        let mut scope = Vec::new();
        for &u in users {
            if !context.users.contains_key(&u) {
                return Err(OxFault::new(
                    FaultKind::NoSuchUser,
                    format!("No such user {u} in context {ctx_id}"),
                ));
            }
            scope.push(u);
        }
        for &g in groups {
            let members: Vec<i32> = if g == 0 {
                context.users.keys().copied().collect()
            } else {
                match context.groups.get(&g) {
                    Some(group) => group.members.clone(),
                    None => {
                        return Err(OxFault::new(
                            FaultKind::NoSuchUser,
                            format!("No such group {g} in context {ctx_id}"),
                        ))
                    }
                }
            };
            scope.extend(members);
        }
        scope.sort_unstable();
        scope.dedup();
        Ok(scope)
    }

    pub(crate) fn create_account(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        data: Option<AccountDataOnCreate>,
        users: &[i32],
        groups: &[i32],
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let data = data.ok_or_else(|| OxFault::invalid("Account data is missing."))?;
        if users.is_empty() && groups.is_empty() {
            return Err(OxFault::invalid("Missing users/groups in account data"));
        }
        let Some(address) = non_empty(&data.primary_address).map(str::to_string) else {
            return Err(OxFault::invalid("Primary address is empty."));
        };
        let scope = self.account_scope(ctx_id, users, groups)?;
        let context = self.ctx_mut(ctx_id);
        if let Some(dup) = context.accounts.iter().find(|a| {
            a.primary_address.as_deref() == Some(address.as_str())
                && a.user_id.is_some_and(|u| scope.contains(&u))
        }) {
            return Err(OxFault::invalid(format!(
                "Account with primary address {address} already exists for user {}",
                dup.user_id.unwrap_or_default()
            )));
        }
        for user_id in scope {
            let id = context.next_account_id;
            context.next_account_id += 1;
            let endpoint = endpoint_of(&data, context.users.get(&user_id).map(|r| &r.user));
            context.accounts.push(Account {
                context_id: Some(ctx_id),
                user_id: Some(user_id),
                id: Some(id),
                login: data.login.clone(),
                password: data.password.clone(),
                name: data.name.clone(),
                primary_address: Some(address.clone()),
                personal: data.personal.clone(),
                reply_to: data.reply_to.clone(),
                mail_server: endpoint.mail_server,
                mail_port: endpoint.mail_port,
                mail_protocol: endpoint.mail_protocol,
                mail_secure: endpoint.mail_secure,
                mail_start_tls: endpoint.mail_start_tls,
                transport_login: data.transport_login.clone(),
                transport_password: data.transport_password.clone(),
                transport_server: endpoint.transport_server,
                transport_port: endpoint.transport_port,
                transport_protocol: endpoint.transport_protocol,
                transport_secure: endpoint.transport_secure,
                transport_start_tls: endpoint.transport_start_tls,
                archive_fullname: data.archive_fullname.clone(),
                drafts_fullname: data.drafts_fullname.clone(),
                sent_fullname: data.sent_fullname.clone(),
                spam_fullname: data.spam_fullname.clone(),
                trash_fullname: data.trash_fullname.clone(),
                confirmed_spam_fullname: data.confirmed_spam_fullname.clone(),
                confirmed_ham_fullname: data.confirmed_ham_fullname.clone(),
            });
        }
        Ok(())
    }

    pub(crate) fn delete_account(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        primary_address: Option<&str>,
        users: &[i32],
        groups: &[i32],
    ) -> OxResult<bool> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        if users.is_empty() && groups.is_empty() {
            return Err(OxFault::invalid("Missing users/groups in account data"));
        }
        let Some(address) = primary_address.filter(|a| !a.is_empty()) else {
            return Err(OxFault::invalid("Primary address is empty."));
        };
        let scope = self.account_scope(ctx_id, users, groups)?;
        let context = self.ctx_mut(ctx_id);
        let before = context.accounts.len();
        context.accounts.retain(|a| {
            !(a.primary_address.as_deref() == Some(address)
                && a.user_id.is_some_and(|u| scope.contains(&u)))
        });
        Ok(context.accounts.len() != before)
    }

    pub(crate) fn list_accounts(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        users: &[i32],
        groups: &[i32],
    ) -> OxResult<Vec<Account>> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let all = users.is_empty() && groups.is_empty();
        let scope = self.account_scope(ctx_id, users, groups)?;
        Ok(self.contexts[&ctx_id]
            .accounts
            .iter()
            .filter(|a| all || a.user_id.is_some_and(|u| scope.contains(&u)))
            .map(|a| Account {
                password: None,
                transport_password: None,
                ..a.clone()
            })
            .collect())
    }
}

/// Mail and transport endpoints of a secondary account.
#[derive(Default)]
struct Endpoint {
    mail_server: Option<String>,
    mail_port: Option<i32>,
    mail_protocol: Option<String>,
    mail_secure: Option<bool>,
    mail_start_tls: Option<bool>,
    transport_server: Option<String>,
    transport_port: Option<i32>,
    transport_protocol: Option<String>,
    transport_secure: Option<bool>,
    transport_start_tls: Option<bool>,
}

/// `mailEndpointSource`/`transportEndpointSource` = `primary` take the server of the user's
/// primary account (`imapServer`/`smtpServer`); otherwise the account data's own values.
fn endpoint_of(data: &AccountDataOnCreate, user: Option<&User>) -> Endpoint {
    // `imaps://` → ("imap", secure); `imap://` → ("imap", STARTTLS).
    pub(super) fn scheme(schema: Option<&str>, default: &str) -> (String, bool) {
        let schema = schema.unwrap_or(default).trim_end_matches("://");
        match schema.strip_suffix('s') {
            Some(base) if !base.is_empty() => (base.to_string(), true),
            _ => (schema.to_string(), false),
        }
    }
    let mut e = Endpoint {
        mail_server: data.mail_server.clone(),
        mail_port: data.mail_port,
        mail_protocol: data.mail_protocol.clone(),
        mail_secure: data.mail_secure,
        mail_start_tls: data.mail_start_tls,
        transport_server: data.transport_server.clone(),
        transport_port: data.transport_port,
        transport_protocol: data.transport_protocol.clone(),
        transport_secure: data.transport_secure,
        transport_start_tls: data.transport_start_tls,
    };
    let Some(user) = user else { return e };
    if data.mail_endpoint_source.as_deref() == Some("primary") {
        let (protocol, secure) = scheme(user.imap_schema.as_deref(), "imap://");
        e.mail_server = user.imap_server.clone();
        e.mail_port = user.imap_port;
        e.mail_protocol = Some(protocol);
        e.mail_secure = Some(secure);
        e.mail_start_tls = Some(!secure);
    }
    if data.transport_endpoint_source.as_deref() == Some("primary") {
        let (protocol, secure) = scheme(user.smtp_schema.as_deref(), "smtp://");
        e.transport_server = user.smtp_server.clone();
        e.transport_port = user.smtp_port;
        e.transport_protocol = Some(protocol);
        e.transport_secure = Some(secure);
        e.transport_start_tls = Some(!secure);
    }
    e
}
