//! OXContextService calls (master credentials): create (plain, with module access, with an
//! access combination), change, delete, exists, getData, list.

use super::client::{decode, OxClient};
use super::envelope::{Request, Service};
use super::error::OxError;
use super::types::{Context, User, UserModuleAccess};

impl OxClient {
    fn context_request(&self, op: &'static str) -> Request {
        Request::new(Service::Context, op)
    }

    /// `create`: creates the context and its admin user (`admin.name`/`admin.password` become
    /// the context-admin credentials). Returns the context with server-filled fields.
    pub async fn create_context(&self, ctx: &Context, admin: &User) -> Result<Context, OxError> {
        let mut req = self.context_request("create");
        req.object("ctx", ctx)
            .object("admin_user", admin)
            .auth(self.master());
        decode::one("OXContextService.create", self.call(req, false).await?)
    }

    /// `createModuleAccess`: like [`OxClient::create_context`], with the module rights of the
    /// context admin (and the context's default access).
    pub async fn create_context_with_access(
        &self,
        ctx: &Context,
        admin: &User,
        access: &UserModuleAccess,
    ) -> Result<Context, OxError> {
        let mut req = self.context_request("createModuleAccess");
        req.object("ctx", ctx)
            .object("admin_user", admin)
            .object("access", access)
            .auth(self.master());
        decode::one(
            "OXContextService.createModuleAccess",
            self.call(req, false).await?,
        )
    }

    /// `createModuleAccessByName`: like [`OxClient::create_context`], with a named access
    /// combination (from OX's `ModuleAccessDefinitions.properties`). The admin travels as
    /// `admin_accessuser`, the name the live WSDL uses.
    pub async fn create_context_with_access_combination(
        &self,
        ctx: &Context,
        admin: &User,
        access_combination: &str,
    ) -> Result<Context, OxError> {
        let mut req = self.context_request("createModuleAccessByName");
        req.object("ctx", ctx)
            .object("admin_accessuser", admin)
            .text("access_combination_name", access_combination)
            .auth(self.master());
        decode::one(
            "OXContextService.createModuleAccessByName",
            self.call(req, false).await?,
        )
    }

    /// `change`: partial update of `name`, `maxQuota`, `loginMappings`, `enabled`,
    /// `userAttributes` of the context `ctx.id`.
    pub async fn change_context(&self, ctx: &Context) -> Result<(), OxError> {
        let mut req = self.context_request("change");
        req.object("ctx", ctx).auth(self.master());
        self.call(req, true).await.map(drop)
    }

    /// `delete`: deletes the context and everything in it.
    pub async fn delete_context(&self, ctx: &Context) -> Result<(), OxError> {
        let mut req = self.context_request("delete");
        req.object("ctx", ctx).auth(self.master());
        self.call(req, true).await.map(drop)
    }

    /// `exists`: whether context `id` exists.
    pub async fn context_exists(&self, id: i32) -> Result<bool, OxError> {
        let mut req = self.context_request("exists");
        req.context("ctx", id).auth(self.master());
        decode::boolean("OXContextService.exists", self.call(req, false).await?)
    }

    /// `getData`: the context `id`; a missing one is an error with `is_not_found()`
    /// (`Context <id> does not exist`).
    pub async fn get_context(&self, id: i32) -> Result<Context, OxError> {
        let mut req = self.context_request("getData");
        req.context("ctx", id).auth(self.master());
        decode::one("OXContextService.getData", self.call(req, false).await?)
    }

    /// `list`: contexts whose name matches `pattern` (`*` wildcard).
    pub async fn list_contexts(&self, pattern: &str) -> Result<Vec<Context>, OxError> {
        let mut req = self.context_request("list");
        req.text("search_pattern", pattern).auth(self.master());
        decode::many("OXContextService.list", self.call(req, false).await?)
    }
}
