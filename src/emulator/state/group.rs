//! OXGroupService: create, change (membership replaced), delete, members, lists.

use super::*;

impl OxState {
    pub(super) fn check_members(&self, ctx_id: i32, members: &[i32]) -> OxResult<Vec<i32>> {
        let context = &self.contexts[&ctx_id];
        let mut unique = Vec::with_capacity(members.len());
        for &m in members {
            if !context.users.contains_key(&m) {
                return Err(OxFault::new(FaultKind::NoSuchUser, "No such user"));
            }
            if !unique.contains(&m) {
                unique.push(m);
            }
        }
        Ok(unique)
    }

    pub(crate) fn create_group(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        group: Option<Group>,
    ) -> OxResult<Group> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let mut group = group.ok_or_else(|| OxFault::invalid("Group is null"))?;
        require_fields(&[("name", &group.name), ("displayname", &group.displayname)])?;
        let name = self.normalize_name(group.name.take().unwrap_or_default());
        check_name_chars(self.options.check_group_names, &name, is_allowed_group_name)?;
        let index = &self.contexts[&ctx_id].index;
        if index
            .group_names
            .other_than(&index.name_key(&name), None)
            .is_some()
        {
            return Err(OxFault::invalid("Group already exists!"));
        }
        group.members = self.check_members(ctx_id, &group.members)?;
        group.name = Some(name);
        let context = self.ctx_mut(ctx_id);
        let id = context.take_next_id();
        group.id = Some(id);
        context.insert_group(id, group.clone());
        Ok(group)
    }

    pub(crate) fn change_group(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        change: Option<Group>,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let change = change.ok_or_else(|| OxFault::invalid("Group is null"))?;
        let id = self.find_object(ctx_id, Some(&change))?;
        let new_name = change.name.clone().map(|n| self.normalize_name(n));
        if let Some(name) = &new_name {
            if name.is_empty() {
                return Err(OxFault::invalid("Invalid group name"));
            }
            check_name_chars(self.options.check_group_names, name, is_allowed_group_name)?;
            let index = &self.contexts[&ctx_id].index;
            if index
                .group_names
                .other_than(&index.name_key(name), Some(id))
                .is_some()
            {
                return Err(OxFault::invalid(format!(
                    "Group {name} already exists in this context"
                )));
            }
        }
        // OX replaces the membership with the sent list; no `members` = empty list.
        let members = self.check_members(ctx_id, &change.members)?;
        let context = self.ctx_mut(ctx_id);
        let Some(mut group) = context.remove_group(id) else {
            return Err(OxFault::new(FaultKind::NoSuchGroup, "No such group"));
        };
        if let Some(name) = new_name {
            group.name = Some(name);
        }
        if let Some(displayname) = change.displayname {
            group.displayname = Some(displayname);
        }
        group.members = members;
        context.insert_group(id, group);
        Ok(())
    }

    pub(crate) fn delete_groups(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        groups: Vec<Group>,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let refusal = format!("Group with id {DEFAULT_GROUP_ID} cannot be deleted");
        let ids = self.ids_to_delete(ctx_id, &groups, DEFAULT_GROUP_ID, &refusal)?;
        let context = self.ctx_mut(ctx_id);
        for id in ids {
            context.remove_group(id);
        }
        Ok(())
    }

    pub(crate) fn get_default_group(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
    ) -> OxResult<Group> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        Ok(self.contexts[&ctx_id].groups[&DEFAULT_GROUP_ID].clone())
    }

    pub(crate) fn group_members(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        group: Option<Group>,
    ) -> OxResult<Vec<User>> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let id = self.find_object(ctx_id, group.as_ref())?;
        Ok(self.contexts[&ctx_id].groups[&id]
            .members
            .iter()
            .map(|m| User::with_id(*m))
            .collect())
    }

    pub(crate) fn list_groups(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        pattern: Option<&str>,
    ) -> OxResult<Vec<Group>> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        Ok(named_like(self.contexts[&ctx_id].groups.values(), pattern))
    }

    pub(crate) fn list_groups_for_user(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        user: Option<User>,
    ) -> OxResult<Vec<Group>> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let id = self.find_object(ctx_id, user.as_ref())?;
        Ok(self.contexts[&ctx_id]
            .groups
            .values()
            .filter(|g| g.members.contains(&id))
            .cloned()
            .collect())
    }

    pub(crate) fn change_members(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        group: Option<Group>,
        members: Vec<User>,
        add: bool,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let id = self.find_object(ctx_id, group.as_ref())?;
        let mut ids = Vec::new();
        for member in &members {
            let user_id = member
                .id
                .ok_or_else(|| OxFault::invalid("One userobject has no userid"))?;
            if add && !self.contexts[&ctx_id].users.contains_key(&user_id) {
                return Err(OxFault::new(FaultKind::NoSuchUser, "No such user"));
            }
            ids.push(user_id);
        }
        let group = self
            .ctx_mut(ctx_id)
            .groups
            .get_mut(&id)
            // The id was looked up above, under the same lock.
            .expect("group found above");
        if add {
            if ids.iter().any(|m| group.members.contains(m)) {
                return Err(OxFault::invalid("Member already exists in group"));
            }
            for m in ids {
                if !group.members.contains(&m) {
                    group.members.push(m);
                }
            }
        } else {
            group.members.retain(|m| !ids.contains(m));
        }
        Ok(())
    }
}
