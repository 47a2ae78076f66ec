//! OXResourceService: create, change, delete, list.

use super::*;

impl OxState {
    pub(super) fn check_resource_unique(
        &self,
        ctx_id: i32,
        resource: &Resource,
        me: Option<i32>,
    ) -> OxResult<()> {
        let index = &self.contexts[&ctx_id].index;
        if let Some(name) = non_empty(&resource.name) {
            if index
                .resource_names
                .other_than(&index.name_key(name), me)
                .is_some()
            {
                return Err(OxFault::invalid(format!(
                    "Resource {name} already exists in this context"
                )));
            }
        }
        if let Some(mail) = non_empty(&resource.email) {
            if index.resource_mails.other_than(mail, me).is_some() {
                return Err(OxFault::invalid(format!(
                    "Resource e-mail address {mail} already exists in this context"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn create_resource(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        resource: Option<Resource>,
    ) -> OxResult<Resource> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let mut resource = resource.ok_or_else(|| OxFault::invalid("Resource is null"))?;
        require_fields(&[
            ("name", &resource.name),
            ("displayname", &resource.displayname),
            ("email", &resource.email),
        ])?;
        resource.name = resource.name.map(|n| self.normalize_name(n));
        let name = resource.name.as_deref().unwrap_or_default();
        check_name_chars(
            self.options.check_resource_names,
            name,
            is_allowed_group_name,
        )?;
        self.check_resource_unique(ctx_id, &resource, None)?;
        let context = self.ctx_mut(ctx_id);
        let id = context.next_resource_id;
        context.next_resource_id += 1;
        resource.id = Some(id);
        resource.available = Some(resource.available.unwrap_or(true));
        context.insert_resource(id, resource.clone());
        Ok(resource)
    }

    pub(crate) fn change_resource(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        change: Option<Resource>,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let mut change = change.ok_or_else(|| OxFault::invalid("Resource is null"))?;
        let id = self.find_object(ctx_id, Some(&change))?;
        change.id = None;
        change.name = change.name.map(|n| self.normalize_name(n));
        if change.name.as_deref() == Some("") {
            return Err(OxFault::invalid("Invalid resource name"));
        }
        if let Some(name) = &change.name {
            check_name_chars(
                self.options.check_resource_names,
                name,
                is_allowed_group_name,
            )?;
        }
        self.check_resource_unique(ctx_id, &change, Some(id))?;
        let context = self.ctx_mut(ctx_id);
        if let Some(mut resource) = context.remove_resource(id) {
            resource.merge_from(&change);
            context.insert_resource(id, resource);
        }
        Ok(())
    }

    pub(crate) fn delete_resource(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        resource: Option<Resource>,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let id = self.find_object(ctx_id, resource.as_ref())?;
        self.ctx_mut(ctx_id).remove_resource(id);
        Ok(())
    }

    pub(crate) fn list_resources(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        pattern: Option<&str>,
    ) -> OxResult<Vec<Resource>> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        Ok(named_like(
            self.contexts[&ctx_id].resources.values(),
            pattern,
        ))
    }
}
