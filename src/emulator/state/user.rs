//! OXUserService: create with OX's create checks, change with OX's change checks
//! (`OXUser.checkCreateUserData` / `checkChangeUserData`), module access, delete, lists.

use super::*;

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
        if user.primary_email != user.email1 {
            return Err(OxFault::invalid(
                "primarymail must have the same value as email1",
            ));
        }
        if let Some(context) = context {
            self.check_user_unique(context, &user, None, ctx_id)?;
        }
        let primary = user.primary_email.clone().unwrap_or_default();
        if !user.aliases.contains(&primary) {
            user.aliases.insert(0, primary.clone());
        }
        if non_empty(&user.default_sender_address).is_none() {
            user.default_sender_address = Some(primary);
        }
        check_sender_address(&user)?;
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

    pub fn create_user(
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

    pub fn change_user(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        change: Option<User>,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let change = change.ok_or_else(|| OxFault::invalid("User is null"))?;
        // Rename = id + new name: `find_object` looks up by id first, by name only without id.
        let id = self.find_object(ctx_id, Some(&change))?;
        let mut updated = self.contexts[&ctx_id].users[&id].user.clone();
        let mut change = change;
        if let Some(name) = change.name.take() {
            let name = self.normalize_name(name);
            if name.is_empty() {
                return Err(OxFault::invalid("Invalid username"));
            }
            if self.options.check_user_names {
                if let Some(illegal) = is_allowed_user_name(&name) {
                    return Err(OxFault::invalid(format!("Illegal chars: \"{illegal}\"")));
                }
            }
            change.name = Some(name);
        }
        // Server-managed fields cannot be changed.
        change.id = None;
        change.contextadmin = None;
        change.default_group = None;
        updated.merge_from(&change);
        if updated.primary_email != updated.email1 {
            return Err(OxFault::invalid(
                "primarymail must have the same value as email1",
            ));
        }
        let probe = User {
            name: change.name.clone(),
            display_name: change.display_name.clone(),
            primary_email: change.primary_email.clone(),
            ..User::default()
        };
        self.check_user_unique(&self.contexts[&ctx_id], &probe, Some(id), ctx_id)?;
        check_sender_address(&updated)?;
        self.ctx_mut(ctx_id).replace_user(id, updated);
        Ok(())
    }

    pub fn change_user_access(
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

    pub fn delete_user(
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

    pub fn user_exists(
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

    pub fn get_user_access(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        user: Option<User>,
    ) -> OxResult<UserModuleAccess> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let id = self.find_object(ctx_id, user.as_ref())?;
        Ok(self.contexts[&ctx_id].users[&id].access.clone())
    }

    pub fn get_context_admin(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
    ) -> OxResult<User> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let context = &self.contexts[&ctx_id];
        Ok(User::view(context, context.admin_id))
    }

    /// `listAll`/`list`/`listCaseInsensitive`: users with only their `id`, as OX answers.
    pub fn list_users(
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

/// `defaultSenderAddress` must be one of the user's addresses [inf, message not known].
pub(super) fn check_sender_address(user: &User) -> OxResult<()> {
    let Some(sender) = non_empty(&user.default_sender_address) else {
        return Ok(());
    };
    let known =
        user.aliases.iter().any(|a| a == sender) || user.primary_email.as_deref() == Some(sender);
    if known {
        Ok(())
    } else {
        Err(OxFault::invalid(format!(
            "The default sender address {sender} is not one of the user's aliases"
        )))
    }
}
