//! OXContextService: create (with the admin and the default group), change, enable/disable,
//! delete, exists, getData, getAdminId, list.

use super::*;

impl OxState {
    pub(super) fn find_context_id(&self, ctx: Option<&Context>) -> OxResult<i32> {
        let ctx = ctx.ok_or_else(|| OxFault::invalid("Context is null"))?;
        if let Some(id) = ctx.id {
            return match self.contexts.contains_key(&id) {
                true => Ok(id),
                false => Err(OxFault::new(
                    FaultKind::NoSuchContext,
                    format!("Context {id} does not exist"),
                )),
            };
        }
        if let Some(name) = non_empty(&ctx.name) {
            return self
                .contexts
                .values()
                .find(|c| c.data.name.as_deref() == Some(name))
                .and_then(|c| c.data.id)
                .ok_or_else(|| {
                    OxFault::new(
                        FaultKind::NoSuchContext,
                        format!("Context {name} does not exist"),
                    )
                });
        }
        Err(OxFault::invalid("Context id or name is missing"))
    }

    /// A new context's id, name and login mappings must be free; returns its name (the id when
    /// none is given).
    fn check_context_free(&self, id: i32, data: &Context) -> OxResult<String> {
        if self.contexts.contains_key(&id) {
            return Err(OxFault::new(
                FaultKind::ContextExists,
                format!("Context {id} already exists"),
            ));
        }
        let name = non_empty(&data.name).map_or_else(|| id.to_string(), str::to_string);
        if self
            .contexts
            .values()
            .any(|c| c.data.name.as_deref() == Some(name.as_str()))
        {
            return Err(OxFault::new(
                FaultKind::ContextExists,
                format!("Context {name} already exists"),
            ));
        }
        for mapping in &data.login_mappings {
            if let Some(other) = self
                .contexts
                .values()
                .find(|c| c.data.login_mappings.contains(mapping))
            {
                return Err(OxFault::new(
                    FaultKind::ContextExists,
                    format!(
                        "Cannot map '{mapping}' to context {id}: already in use by context {}",
                        other.data.id.unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(name)
    }

    /// `create`, `createModuleAccess`, `createModuleAccessByName`.
    pub(crate) fn create_context(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        admin: Option<User>,
        access: Option<UserModuleAccess>,
        access_combination: Option<String>,
    ) -> OxResult<Context> {
        self.auth_master(auth)?;
        let mut data = ctx.ok_or_else(|| OxFault::invalid("Context is null"))?;
        let admin = admin.ok_or_else(|| OxFault::invalid("Admin user is null"))?;
        let id = match data.id {
            Some(id) if id <= 0 => {
                return Err(OxFault::invalid(format!("Invalid context id {id}")))
            }
            Some(id) => id,
            None => self.contexts.keys().next_back().map_or(1, |max| max + 1),
        };
        let name = self.check_context_free(id, &data)?;
        let admin_user = self.validate_new_user(None, admin, id)?;
        data.id = Some(id);
        data.name = Some(name);
        data.enabled = Some(data.enabled.unwrap_or(true));
        data.filestore_id = Some(3);
        data.filestore_name = Some(format!("{id}_ctx_store"));
        data.max_quota = Some(data.max_quota.unwrap_or(-1));
        data.used_quota = None;
        data.average_size = None;
        let access = access.unwrap_or_else(default_access);
        let mut context = Ctx {
            data: data.clone(),
            admin_id: ADMIN_ID,
            access_combination,
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            resources: BTreeMap::new(),
            accounts: Vec::new(),
            index: Indexes {
                lowercase: self.options.lowercase_names,
                ..Indexes::default()
            },
            next_id: ADMIN_ID + 1,
            next_resource_id: 1,
            next_account_id: 1,
        };
        context.insert_group(
            DEFAULT_GROUP_ID,
            Group {
                displayname: Some("All users".into()),
                id: Some(DEFAULT_GROUP_ID),
                members: vec![ADMIN_ID],
                name: Some("users".into()),
            },
        );
        let mut user = admin_user;
        user.id = Some(ADMIN_ID);
        user.contextadmin = Some(true);
        user.default_group = Some(Box::new(default_group_ref()));
        context.insert_user(ADMIN_ID, UserRecord { user, access });
        self.contexts.insert(id, context);
        Ok(data)
    }

    pub(crate) fn change_context(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
    ) -> OxResult<()> {
        self.auth_master(auth)?;
        let id = self.find_context_id(ctx.as_ref())?;
        let Some(change) = ctx else { return Ok(()) };
        if let Some(name) = non_empty(&change.name) {
            if self
                .contexts
                .values()
                .any(|c| c.data.id != Some(id) && c.data.name.as_deref() == Some(name))
            {
                return Err(OxFault::new(
                    FaultKind::ContextExists,
                    format!("Context {name} already exists"),
                ));
            }
        }
        let context = self.ctx_mut(id);
        let data = &mut context.data;
        if let Some(name) = non_empty(&change.name) {
            data.name = Some(name.to_string());
        }
        if change.max_quota.is_some() {
            data.max_quota = change.max_quota;
        }
        if change.enabled.is_some() {
            data.enabled = change.enabled;
        }
        if !change.login_mappings.is_empty() {
            data.login_mappings = change.login_mappings.clone();
        }
        if let Some(attrs) = &change.user_attributes {
            let target = data.user_attributes.get_or_insert_with(Default::default);
            for (namespace, inner) in &attrs.0 {
                let t = target.0.entry(namespace.clone()).or_default();
                t.extend(inner.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        Ok(())
    }

    pub(crate) fn set_context_enabled(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        enabled: bool,
    ) -> OxResult<()> {
        self.auth_master(auth)?;
        let id = self.find_context_id(ctx.as_ref())?;
        self.ctx_mut(id).data.enabled = Some(enabled);
        Ok(())
    }

    pub(crate) fn delete_context(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
    ) -> OxResult<()> {
        self.auth_master(auth)?;
        let id = self.find_context_id(ctx.as_ref())?;
        self.contexts.remove(&id);
        Ok(())
    }

    pub(crate) fn context_exists(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
    ) -> OxResult<bool> {
        self.auth_master(auth)?;
        match self.find_context_id(ctx.as_ref()) {
            Ok(_) => Ok(true),
            Err(f) if f.kind == FaultKind::NoSuchContext => Ok(false),
            Err(f) => Err(f),
        }
    }

    pub(crate) fn get_context(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
    ) -> OxResult<Context> {
        self.auth_master(auth)?;
        let id = self.find_context_id(ctx.as_ref())?;
        Ok(self.contexts[&id].data.clone())
    }

    pub(crate) fn get_context_admin_id(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
    ) -> OxResult<i32> {
        self.auth_master(auth)?;
        let id = self.find_context_id(ctx.as_ref())?;
        Ok(self.contexts[&id].admin_id)
    }

    pub(crate) fn list_contexts(
        &self,
        auth: Option<&Credentials>,
        pattern: Option<&str>,
    ) -> OxResult<Vec<Context>> {
        self.auth_master(auth)?;
        let pattern = pattern.unwrap_or("*");
        Ok(self
            .contexts
            .values()
            .filter(|c| {
                let name = c.data.name.as_deref().unwrap_or("");
                let id = c.data.id.unwrap_or_default().to_string();
                matches_pattern(pattern, name) || matches_pattern(pattern, &id)
            })
            .map(|c| c.data.clone())
            .collect())
    }
}
