//! OXUserService calls (context-admin credentials): create, createByModuleAccess, change,
//! changeByModuleAccess, delete, exists, getData, getMultipleData, getModuleAccess, listAll;
//! and OXUserCopyService copyUser (master credentials).

use super::client::OxClient;
use super::envelope::Service;
use super::error::OxError;
use super::types::{Context, Credentials, User, UserModuleAccess};

impl OxClient {
    /// `create`: creates `user` in context `ctx`; returns it with its new `id`.
    pub async fn create_user(
        &self,
        ctx: i32,
        user: &User,
        auth: &Credentials,
    ) -> Result<User, OxError> {
        self.invoke_in_context(Service::User, "create", ctx, auth, |req| {
            req.object("usrdata", user)
        })
        .await
    }

    /// `createByModuleAccess`: creates the user with its module rights in one call.
    pub async fn create_user_with_access(
        &self,
        ctx: i32,
        user: &User,
        access: &UserModuleAccess,
        auth: &Credentials,
    ) -> Result<User, OxError> {
        self.invoke_in_context(Service::User, "createByModuleAccess", ctx, auth, |req| {
            req.object("usrdata", user).object("access", access)
        })
        .await
    }

    /// `change`: partial update of the user identified by `user.id` (or `user.name`); rename =
    /// id + new name. Unset fields stay, `Some("")` clears.
    pub async fn change_user(
        &self,
        ctx: i32,
        user: &User,
        auth: &Credentials,
    ) -> Result<(), OxError> {
        self.invoke_in_context(Service::User, "change", ctx, auth, |req| {
            req.object("usrdata", user)
        })
        .await
    }

    /// `changeByModuleAccess`: sets the module rights that are `Some` in `access`.
    pub async fn change_user_module_access(
        &self,
        ctx: i32,
        user: &User,
        access: &UserModuleAccess,
        auth: &Credentials,
    ) -> Result<(), OxError> {
        self.invoke_in_context(Service::User, "changeByModuleAccess", ctx, auth, |req| {
            req.object("user", user).object("moduleAccess", access)
        })
        .await
    }

    /// `delete`: deletes the user (by id, else name).
    pub async fn delete_user(
        &self,
        ctx: i32,
        user: &User,
        auth: &Credentials,
    ) -> Result<(), OxError> {
        self.invoke_in_context(Service::User, "delete", ctx, auth, |req| {
            req.object("user", user)
        })
        .await
    }

    /// `exists`: whether the user (by name, or id) exists; never a not-found fault.
    pub async fn user_exists(
        &self,
        ctx: i32,
        user: &User,
        auth: &Credentials,
    ) -> Result<bool, OxError> {
        self.invoke_in_context(Service::User, "exists", ctx, auth, |req| {
            req.object("user", user)
        })
        .await
    }

    /// `getData`: the user by id, else by name.
    pub async fn get_user(
        &self,
        ctx: i32,
        user: &User,
        auth: &Credentials,
    ) -> Result<User, OxError> {
        self.invoke_in_context(Service::User, "getData", ctx, auth, |req| {
            req.object("user", user)
        })
        .await
    }

    /// `getMultipleData`: several users at once (for cache rebuilds after `listAll`).
    pub async fn get_users(
        &self,
        ctx: i32,
        users: &[User],
        auth: &Credentials,
    ) -> Result<Vec<User>, OxError> {
        self.invoke_in_context(Service::User, "getMultipleData", ctx, auth, |req| {
            for user in users {
                req.object("users", user);
            }
            req
        })
        .await
    }

    /// `getModuleAccess`: the module rights of a user.
    pub async fn get_user_module_access(
        &self,
        ctx: i32,
        user: &User,
        auth: &Credentials,
    ) -> Result<UserModuleAccess, OxError> {
        self.invoke_in_context(Service::User, "getModuleAccess", ctx, auth, |req| {
            req.object("user", user)
        })
        .await
    }

    /// `listAll`: all users of the context (OX may fill only `id`).
    pub async fn list_all_users(&self, ctx: i32, auth: &Credentials) -> Result<Vec<User>, OxError> {
        self.invoke_in_context(Service::User, "listAll", ctx, auth, |req| req)
            .await
    }

    /// OXUserCopyService `copyUser` (master credentials): copies `user` (by id) from context
    /// `src` to context `dest`; returns the copy (OX fills only its new `id`).
    pub async fn copy_user(&self, user: &User, src: i32, dest: i32) -> Result<User, OxError> {
        self.invoke(Service::UserCopy, "copyUser", &self.master(), |req| {
            req.object("user", user)
                .object("src", &Context::with_id(src))
                .object("dest", &Context::with_id(dest))
        })
        .await
    }
}
