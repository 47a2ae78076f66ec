//! OXGroupService calls (context-admin credentials): create, change, delete, getData, list,
//! listGroupsForUser, addMember, removeMember.

use super::client::OxClient;
use super::envelope::Service;
use super::error::OxError;
use super::types::{Credentials, Group, User};

impl OxClient {
    /// `create`: `name` and `displayname` are mandatory; returns the group with its new `id`.
    pub async fn create_group(
        &self,
        ctx: i32,
        group: &Group,
        auth: &Credentials,
    ) -> Result<Group, OxError> {
        self.invoke_in_context(Service::Group, "create", ctx, auth, |req| {
            req.object("grp", group)
        })
        .await
    }

    /// `change`: identified by `id` (or `name`); **replaces** the membership with `members`, so
    /// always send the full list.
    pub async fn change_group(
        &self,
        ctx: i32,
        group: &Group,
        auth: &Credentials,
    ) -> Result<(), OxError> {
        self.invoke_in_context(Service::Group, "change", ctx, auth, |req| {
            req.object("grp", group)
        })
        .await
    }

    /// `delete` (by id, else name). The default group (id 1) cannot be deleted.
    pub async fn delete_group(
        &self,
        ctx: i32,
        group: &Group,
        auth: &Credentials,
    ) -> Result<(), OxError> {
        self.invoke_in_context(Service::Group, "delete", ctx, auth, |req| {
            req.object("grp", group)
        })
        .await
    }

    /// `getData`: the group by id, else by name.
    pub async fn get_group(
        &self,
        ctx: i32,
        group: &Group,
        auth: &Credentials,
    ) -> Result<Group, OxError> {
        self.invoke_in_context(Service::Group, "getData", ctx, auth, |req| {
            req.object("grp", group)
        })
        .await
    }

    /// `list`: groups whose name matches `pattern` (`*` wildcard), with members.
    pub async fn list_groups(
        &self,
        ctx: i32,
        pattern: &str,
        auth: &Credentials,
    ) -> Result<Vec<Group>, OxError> {
        self.invoke_in_context(Service::Group, "list", ctx, auth, |req| {
            req.text("pattern", pattern)
        })
        .await
    }

    /// `listGroupsForUser`: the groups `user` (by id) is a member of.
    pub async fn list_groups_for_user(
        &self,
        ctx: i32,
        user: &User,
        auth: &Credentials,
    ) -> Result<Vec<Group>, OxError> {
        self.invoke_in_context(Service::Group, "listGroupsForUser", ctx, auth, |req| {
            req.object("usr", user)
        })
        .await
    }

    /// `addMember`: adds users (by id); an existing member is an error.
    pub async fn add_group_members(
        &self,
        ctx: i32,
        group: &Group,
        members: &[i32],
        auth: &Credentials,
    ) -> Result<(), OxError> {
        self.change_members("addMember", ctx, group, members, auth)
            .await
    }

    /// `removeMember`: removes users (by id).
    pub async fn remove_group_members(
        &self,
        ctx: i32,
        group: &Group,
        members: &[i32],
        auth: &Credentials,
    ) -> Result<(), OxError> {
        self.change_members("removeMember", ctx, group, members, auth)
            .await
    }

    async fn change_members(
        &self,
        op: &'static str,
        ctx: i32,
        group: &Group,
        members: &[i32],
        auth: &Credentials,
    ) -> Result<(), OxError> {
        self.invoke_in_context(Service::Group, op, ctx, auth, |req| {
            req.object("grp", group);
            for &id in members {
                req.object("members", &User::with_id(id));
            }
            req
        })
        .await
    }
}
