//! OXUserService calls (context-admin credentials): create, change, changeByModuleAccess,
//! delete, exists, getData, getMultipleData, getModuleAccess, listAll; and OXUserCopyService
//! copyUser (master credentials).

use super::client::{decode, OxClient};
use super::envelope::{Request, Service};
use super::error::OxError;
use super::types::{Context, Credentials, User, UserModuleAccess};

impl OxClient {
    fn user_request(op: &'static str, ctx: i32) -> Request {
        let mut req = Request::new(Service::User, op);
        req.context("ctx", ctx);
        req
    }

    /// `create`: creates `user` in context `ctx`; returns it with its new `id`.
    pub async fn create_user(
        &self,
        ctx: i32,
        user: &User,
        auth: &Credentials,
    ) -> Result<User, OxError> {
        let mut req = Self::user_request("create", ctx);
        req.object("usrdata", user).auth(auth);
        decode::one("OXUserService.create", self.call(req, false).await?)
    }

    /// `change`: partial update of the user identified by `user.id` (or `user.name`); rename =
    /// id + new name. Unset fields stay, `Some("")` clears.
    /// `createByModuleAccess`: creates the user with its module rights in one call.
    pub async fn create_user_with_access(
        &self,
        ctx: i32,
        user: &User,
        access: &UserModuleAccess,
        auth: &Credentials,
    ) -> Result<User, OxError> {
        let mut req = Self::user_request("createByModuleAccess", ctx);
        req.object("usrdata", user)
            .object("access", access)
            .auth(auth);
        decode::one(
            "OXUserService.createByModuleAccess",
            self.call(req, false).await?,
        )
    }

    pub async fn change_user(
        &self,
        ctx: i32,
        user: &User,
        auth: &Credentials,
    ) -> Result<(), OxError> {
        let mut req = Self::user_request("change", ctx);
        req.object("usrdata", user).auth(auth);
        self.call(req, true).await.map(drop)
    }

    /// `changeByModuleAccess`: sets the module rights that are `Some` in `access`.
    pub async fn change_user_module_access(
        &self,
        ctx: i32,
        user: &User,
        access: &UserModuleAccess,
        auth: &Credentials,
    ) -> Result<(), OxError> {
        let mut req = Self::user_request("changeByModuleAccess", ctx);
        req.object("user", user)
            .object("moduleAccess", access)
            .auth(auth);
        self.call(req, true).await.map(drop)
    }

    /// `delete`: deletes the user (by id, else name).
    pub async fn delete_user(
        &self,
        ctx: i32,
        user: &User,
        auth: &Credentials,
    ) -> Result<(), OxError> {
        let mut req = Self::user_request("delete", ctx);
        req.object("user", user).auth(auth);
        self.call(req, true).await.map(drop)
    }

    /// `exists`: whether the user (by name, or id) exists; never a not-found fault.
    pub async fn user_exists(
        &self,
        ctx: i32,
        user: &User,
        auth: &Credentials,
    ) -> Result<bool, OxError> {
        let mut req = Self::user_request("exists", ctx);
        req.object("user", user).auth(auth);
        decode::boolean("OXUserService.exists", self.call(req, false).await?)
    }

    /// `getData`: the user by id, else by name.
    pub async fn get_user(
        &self,
        ctx: i32,
        user: &User,
        auth: &Credentials,
    ) -> Result<User, OxError> {
        let mut req = Self::user_request("getData", ctx);
        req.object("user", user).auth(auth);
        decode::one("OXUserService.getData", self.call(req, false).await?)
    }

    /// `getMultipleData`: several users at once (for cache rebuilds after `listAll`).
    pub async fn get_users(
        &self,
        ctx: i32,
        users: &[User],
        auth: &Credentials,
    ) -> Result<Vec<User>, OxError> {
        let mut req = Self::user_request("getMultipleData", ctx);
        for user in users {
            req.object("users", user);
        }
        req.auth(auth);
        decode::many(
            "OXUserService.getMultipleData",
            self.call(req, false).await?,
        )
    }

    /// `getModuleAccess`: the module rights of a user.
    pub async fn get_user_module_access(
        &self,
        ctx: i32,
        user: &User,
        auth: &Credentials,
    ) -> Result<UserModuleAccess, OxError> {
        let mut req = Self::user_request("getModuleAccess", ctx);
        req.object("user", user).auth(auth);
        decode::one(
            "OXUserService.getModuleAccess",
            self.call(req, false).await?,
        )
    }

    /// `listAll`: all users of the context (OX may fill only `id`).
    pub async fn list_all_users(&self, ctx: i32, auth: &Credentials) -> Result<Vec<User>, OxError> {
        let mut req = Self::user_request("listAll", ctx);
        req.auth(auth);
        decode::many("OXUserService.listAll", self.call(req, false).await?)
    }

    /// OXUserCopyService `copyUser` (master credentials): copies `user` (by id) from context
    /// `src` to context `dest`; returns the copy (OX fills only its new `id`).
    pub async fn copy_user(&self, user: &User, src: i32, dest: i32) -> Result<User, OxError> {
        let mut req = Request::new(Service::UserCopy, "copyUser");
        req.object("user", user)
            .object("src", &Context::with_id(src))
            .object("dest", &Context::with_id(dest))
            .auth(self.master());
        decode::one("OXUserCopyService.copyUser", self.call(req, false).await?)
    }
}
