//! OXGroupService calls (context-admin credentials): create, change, delete, getData, list,
//! listGroupsForUser, addMember, removeMember.

use super::client::{decode, OxClient};
use super::envelope::{Request, Service};
use super::error::OxError;
use super::types::{Credentials, Group, User};

impl OxClient {
    fn group_request(op: &'static str, ctx: i32) -> Request {
        let mut req = Request::new(Service::Group, op);
        req.context("ctx", ctx);
        req
    }

    /// `create`: `name` and `displayname` are mandatory; returns the group with its new `id`.
    pub async fn create_group(
        &self,
        ctx: i32,
        group: &Group,
        auth: &Credentials,
    ) -> Result<Group, OxError> {
        let mut req = Self::group_request("create", ctx);
        req.object("grp", group).auth(auth);
        decode::one("OXGroupService.create", self.call(req, false).await?)
    }

    /// `change`: identified by `id` (or `name`); **replaces** the membership with `members`, so
    /// always send the full list.
    pub async fn change_group(
        &self,
        ctx: i32,
        group: &Group,
        auth: &Credentials,
    ) -> Result<(), OxError> {
        let mut req = Self::group_request("change", ctx);
        req.object("grp", group).auth(auth);
        self.call(req, true).await.map(drop)
    }

    /// `delete` (by id, else name). The default group (id 1) cannot be deleted.
    pub async fn delete_group(
        &self,
        ctx: i32,
        group: &Group,
        auth: &Credentials,
    ) -> Result<(), OxError> {
        let mut req = Self::group_request("delete", ctx);
        req.object("grp", group).auth(auth);
        self.call(req, true).await.map(drop)
    }

    /// `getData`: the group by id, else by name.
    pub async fn get_group(
        &self,
        ctx: i32,
        group: &Group,
        auth: &Credentials,
    ) -> Result<Group, OxError> {
        let mut req = Self::group_request("getData", ctx);
        req.object("grp", group).auth(auth);
        decode::one("OXGroupService.getData", self.call(req, false).await?)
    }

    /// `list`: groups whose name matches `pattern` (`*` wildcard), with members.
    pub async fn list_groups(
        &self,
        ctx: i32,
        pattern: &str,
        auth: &Credentials,
    ) -> Result<Vec<Group>, OxError> {
        let mut req = Self::group_request("list", ctx);
        req.text("pattern", pattern).auth(auth);
        decode::many("OXGroupService.list", self.call(req, false).await?)
    }

    /// `listGroupsForUser`: the groups `user` (by id) is a member of.
    pub async fn list_groups_for_user(
        &self,
        ctx: i32,
        user: &User,
        auth: &Credentials,
    ) -> Result<Vec<Group>, OxError> {
        let mut req = Self::group_request("listGroupsForUser", ctx);
        req.object("usr", user).auth(auth);
        decode::many(
            "OXGroupService.listGroupsForUser",
            self.call(req, false).await?,
        )
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
        let mut req = Self::group_request(op, ctx);
        req.object("grp", group);
        for &id in members {
            req.object("members", &User::with_id(id));
        }
        req.auth(auth);
        self.call(req, true).await.map(drop)
    }
}
