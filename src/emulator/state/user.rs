//! OXUserService: create with OX's create checks, change with OX's change checks
//! (`OXUser.checkCreateUserData` / `checkChangeUserData`), module access, delete, lists.

use super::*;
use crate::ox::soap::mail_address;

impl OxState {
    /// Mandatory fields, name rules and uniqueness of a new user (`ox-soap.md` §7, §9.11).
    pub(super) fn validate_new_user(
        &self,
        context: Option<&Ctx>,
        mut user: User,
        ctx_id: i32,
    ) -> OxResult<User> {
        require_fields(&[
            ("name", &user.name),
            ("display_name", &user.display_name),
            ("password", &user.password),
            ("given_name", &user.given_name),
            ("sur_name", &user.sur_name),
            ("primaryEmail", &user.primary_email),
            ("email1", &user.email1),
        ])?;
        let name = self.normalize_name(user.name.take().unwrap_or_default());
        if self.options.check_user_names {
            if let Some(illegal) = is_allowed_user_name(&name) {
                return Err(OxFault::invalid(format!("Illegal chars: \"{illegal}\"")));
            }
        }
        user.name = Some(name);
        check_addresses(&user)?;
        if user.primary_email != user.email1 {
            return Err(OxFault::invalid(
                "primarymail must have the same value as email1",
            ));
        }
        if let Some(context) = context {
            self.check_user_unique(context, &user, None, ctx_id)?;
        }
        // OX adds the default sender address (else sets it to the primary mail) and the primary
        // mail to the aliases (`OXUser.checkCreateUserData`).
        let primary = user.primary_email.clone().unwrap_or_default();
        match non_empty(&user.default_sender_address).map(str::to_string) {
            Some(sender) => add_alias(&mut user.aliases, sender),
            None => user.default_sender_address = Some(primary.clone()),
        }
        if !user.aliases.contains(&primary) {
            user.aliases.insert(0, primary);
        }
        user.contextadmin = Some(false);
        user.password_mech = Some(
            user.password_mech
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "{SHA-256}".into()),
        );
        user.mailenabled = Some(user.mailenabled.unwrap_or(true));
        Ok(user)
    }

    /// Name, display name and primary mail must be unique in the context (excluding `me`).
    pub(super) fn check_user_unique(
        &self,
        context: &Ctx,
        user: &User,
        me: Option<i32>,
        ctx_id: i32,
    ) -> OxResult<()> {
        let ix = &context.index;
        if let Some(name) = non_empty(&user.name) {
            if ix.user_names.other_than(&ix.name_key(name), me).is_some() {
                return Err(OxFault::invalid(format!(
                    "User {name} already exists in this context"
                )));
            }
        }
        if let Some(display) = non_empty(&user.display_name) {
            if self.options.unique_display_names
                && ix.display_names.other_than(display, me).is_some()
            {
                return Err(OxFault::invalid("The displayname is already used"));
            }
        }
        if let Some(mail) = non_empty(&user.primary_email) {
            if ix.primary_mails.other_than(mail, me).is_some() {
                return Err(OxFault::invalid(format!(
                    "Primary mail address \"{mail}\" already exists in context {ctx_id}"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn create_user(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        user: Option<User>,
        access: Option<UserModuleAccess>,
    ) -> OxResult<User> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let user = user.ok_or_else(|| OxFault::invalid("User is null"))?;
        let user = self.validate_new_user(Some(&self.contexts[&ctx_id]), user, ctx_id)?;
        let context = self.ctx_mut(ctx_id);
        let id = context.add_user(user, access.unwrap_or_else(default_access));
        Ok(context.users[&id].user.clone())
    }

    pub(crate) fn change_user(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        change: Option<User>,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let change = change.ok_or_else(|| OxFault::invalid("User is null"))?;
        // Rename = id + new name: `find_object` looks up by id first, by name only without id.
        let id = self.find_object(ctx_id, Some(&change))?;
        let stored = self.contexts[&ctx_id].users[&id].user.clone();
        let mut change = change;
        self.check_change(ctx_id, id, &mut change, &stored)?;
        // Server-managed fields cannot be changed.
        change.id = None;
        change.contextadmin = None;
        change.default_group = None;
        let probe = User {
            display_name: change.display_name.clone(),
            ..User::default()
        };
        self.check_user_unique(&self.contexts[&ctx_id], &probe, Some(id), ctx_id)?;
        let mut updated = stored;
        updated.merge_from(&change);
        self.ctx_mut(ctx_id).replace_user(id, updated);
        Ok(())
    }

    /// OX's checks of a user change, in OX's order (`OXUser.checkChangeUserData`): the name,
    /// the language, the primary mail address, and for users other than the context admin the
    /// mail addresses against the aliases.
    fn check_change(&self, ctx_id: i32, id: i32, change: &mut User, stored: &User) -> OxResult<()> {
        self.check_rename(ctx_id, id, change, stored)?;
        if let Some(language) = &change.language {
            if !language.contains('_') {
                return Err(OxFault::invalid(
                    "Language must contain an underscore, e.g. en_US.",
                ));
            }
        }
        if self.options.primary_mail_unchangeable
            && change
                .primary_email
                .as_ref()
                .is_some_and(|new| !same_address(Some(new), &stored.primary_email))
        {
            return Err(OxFault::invalid("primary mail must not be changed"));
        }
        // OX checks the mail fields of a change only when one of them is sent.
        let mails_sent = change.primary_email.is_some()
            || change.email1.is_some()
            || change.default_sender_address.is_some()
            || !change.aliases.is_empty();
        if !mails_sent || id == self.contexts[&ctx_id].admin_id {
            return Ok(());
        }
        check_addresses(change)?;
        self.check_change_mails(ctx_id, id, change, stored)
    }

    /// A sent name other than the stored one is a rename: refused unless
    /// `USERNAME_CHANGEABLE=true`; allowed, the new name is validated, lower-cased (with
    /// `AUTO_TO_LOWERCASE_UID`) and must be free.
    fn check_rename(&self, ctx_id: i32, id: i32, change: &mut User, stored: &User) -> OxResult<()> {
        let Some(mut name) = change.name.take() else {
            return Ok(());
        };
        let changeable = self.options.username_changeable;
        if changeable {
            if name.trim().is_empty() {
                // OX's storage ignores an empty name.
                return Ok(());
            }
            if self.options.check_user_names {
                if let Some(illegal) = is_allowed_user_name(&name) {
                    return Err(OxFault::invalid(format!("Illegal chars: \"{illegal}\"")));
                }
            }
            name = self.normalize_name(name);
        }
        if stored.name.as_deref() != Some(name.as_str()) {
            if !changeable {
                return Err(OxFault::invalid("Changing username is disabled!"));
            }
            let ix = &self.contexts[&ctx_id].index;
            if ix
                .user_names
                .other_than(&ix.name_key(&name), Some(id))
                .is_some()
            {
                return Err(OxFault::invalid(format!(
                    "User {name} already exists in this context"
                )));
            }
        }
        change.name = Some(name);
        Ok(())
    }

    /// The mail rules of a change of a user other than the context admin.
    fn check_change_mails(
        &self,
        ctx_id: i32,
        id: i32,
        change: &User,
        stored: &User,
    ) -> OxResult<()> {
        let (primary, email1) = (&change.primary_email, &change.email1);
        if let (Some(p), Some(e)) = (primary, email1) {
            if !p.eq_ignore_ascii_case(e) {
                return Err(OxFault::invalid("email1 not equal with primarymail!"));
            }
        }
        if let Some(p) = primary {
            let ix = &self.contexts[&ctx_id].index;
            let taken = ix.primary_mails.other_than(p, Some(id)).is_some();
            if !same_address(Some(p), &stored.primary_email) && taken {
                return Err(OxFault::invalid(format!(
                    "Primary mail address \"{p}\" already exists in context {ctx_id}"
                )));
            }
        }
        let aliases = if change.aliases.is_empty() {
            &stored.aliases
        } else {
            &change.aliases
        };
        let sent_or_stored = |sent: &Option<String>, kept: &Option<String>| {
            let value = sent.as_ref().or(kept.as_ref());
            value.is_some_and(|v| aliases.contains(v))
        };
        let all_present = sent_or_stored(primary, &stored.primary_email)
            && sent_or_stored(email1, &stored.email1)
            && sent_or_stored(
                &change.default_sender_address,
                &stored.default_sender_address,
            );
        if !all_present {
            return Err(OxFault::invalid(
                "primaryMail, Email1 and defaultSenderAddress must be present in set of aliases.",
            ));
        }
        if primary.is_some() && email1.is_none() {
            return Err(OxFault::invalid("email1 not sent but required!"));
        }
        Ok(())
    }

    pub(crate) fn change_user_access(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        user: Option<User>,
        access: Option<UserModuleAccess>,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let id = self.find_object(ctx_id, user.as_ref())?;
        let access = access.ok_or_else(|| OxFault::invalid("Module access is null"))?;
        let record = self
            .ctx_mut(ctx_id)
            .users
            .get_mut(&id)
            // The id was looked up above, under the same lock.
            .expect("user found above");
        record.access.merge_from(&access);
        Ok(())
    }

    pub(crate) fn delete_user(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        users: Vec<User>,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let admin_id = self.contexts[&ctx_id].admin_id;
        let ids = self.ids_to_delete(ctx_id, &users, admin_id, "Admin delete not supported")?;
        let context = self.ctx_mut(ctx_id);
        for id in ids {
            context.remove_user(id);
            for group in context.groups.values_mut() {
                group.members.retain(|m| *m != id);
            }
            context.accounts.retain(|a| a.user_id != Some(id));
        }
        Ok(())
    }

    pub(crate) fn user_exists(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        user: Option<User>,
    ) -> OxResult<bool> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        match self.find_object(ctx_id, user.as_ref()) {
            Ok(_) => Ok(true),
            Err(f) if f.kind == FaultKind::NoSuchUser => Ok(false),
            Err(f) => Err(f),
        }
    }

    pub(crate) fn get_user_access(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        user: Option<User>,
    ) -> OxResult<UserModuleAccess> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let id = self.find_object(ctx_id, user.as_ref())?;
        Ok(self.contexts[&ctx_id].users[&id].access.clone())
    }

    pub(crate) fn get_context_admin(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
    ) -> OxResult<User> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let context = &self.contexts[&ctx_id];
        Ok(User::view(context, context.admin_id))
    }

    /// `listAll`/`list`/`listCaseInsensitive`: users with only their `id`, as OX answers.
    pub(crate) fn list_users(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        pattern: Option<&str>,
        case_insensitive: bool,
    ) -> OxResult<Vec<User>> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let pattern = pattern.unwrap_or("*");
        Ok(self.contexts[&ctx_id]
            .users
            .values()
            .filter(|r| {
                let name = r.user.name.as_deref().unwrap_or("");
                if case_insensitive {
                    matches_pattern(&pattern.to_lowercase(), &name.to_lowercase())
                } else {
                    matches_pattern(pattern, name)
                }
            })
            .map(|r| User {
                id: r.user.id,
                ..User::default()
            })
            .collect())
    }
}

/// OX's `checkValidEmailsInUserObject`: every sent, non-blank mail field must be an address
/// OX's parser accepts ([`mail_address::ox_accepts`]), else `Invalid email address`.
fn check_addresses(user: &User) -> OxResult<()> {
    let single = [
        &user.primary_email,
        &user.email1,
        &user.email2,
        &user.email3,
        &user.default_sender_address,
    ];
    let all = single
        .into_iter()
        .flatten()
        .chain(&user.aliases)
        .all(|address| mail_address::ox_accepts(address));
    if all {
        Ok(())
    } else {
        Err(OxFault::invalid("Invalid email address"))
    }
}

/// Adds `address` to `aliases` unless it is there (OX keeps aliases as a set).
fn add_alias(aliases: &mut Vec<String>, address: String) {
    if !aliases.contains(&address) {
        aliases.push(address);
    }
}

/// OX compares a sent primary address with the stored one ignoring case.
fn same_address(new: Option<&String>, stored: &Option<String>) -> bool {
    match (new, stored) {
        (Some(new), Some(stored)) => new.eq_ignore_ascii_case(stored),
        (None, None) => true,
        _ => false,
    }
}
