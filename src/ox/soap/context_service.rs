//! OXContextService calls (master credentials): create (plain, with module access, with an
//! access combination), change, delete, exists, getData, list.

use super::client::OxClient;
use super::envelope::Service;
use super::error::OxError;
use super::types::{Context, User, UserModuleAccess};

impl OxClient {
    /// `create`: creates the context and its admin user (`admin.name`/`admin.password` become
    /// the context-admin credentials). Returns the context with server-filled fields.
    pub async fn create_context(&self, ctx: &Context, admin: &User) -> Result<Context, OxError> {
        self.invoke(Service::Context, "create", &self.master(), |req| {
            req.object("ctx", ctx).object("admin_user", admin)
        })
        .await
    }

    /// `createModuleAccess`: like [`OxClient::create_context`], with the module rights of the
    /// context admin (and the context's default access).
    pub async fn create_context_with_access(
        &self,
        ctx: &Context,
        admin: &User,
        access: &UserModuleAccess,
    ) -> Result<Context, OxError> {
        self.invoke(
            Service::Context,
            "createModuleAccess",
            &self.master(),
            |req| {
                req.object("ctx", ctx)
                    .object("admin_user", admin)
                    .object("access", access)
            },
        )
        .await
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
        let op = "createModuleAccessByName";
        self.invoke(Service::Context, op, &self.master(), |req| {
            req.object("ctx", ctx)
                .object("admin_accessuser", admin)
                .text("access_combination_name", access_combination)
        })
        .await
    }

    /// `change`: partial update of `name`, `maxQuota`, `loginMappings`, `enabled`,
    /// `userAttributes` of the context `ctx.id`.
    pub async fn change_context(&self, ctx: &Context) -> Result<(), OxError> {
        self.invoke(Service::Context, "change", &self.master(), |req| {
            req.object("ctx", ctx)
        })
        .await
    }

    /// `delete`: deletes the context and everything in it.
    pub async fn delete_context(&self, ctx: &Context) -> Result<(), OxError> {
        self.invoke(Service::Context, "delete", &self.master(), |req| {
            req.object("ctx", ctx)
        })
        .await
    }

    /// `exists`: whether context `id` exists.
    pub async fn context_exists(&self, id: i32) -> Result<bool, OxError> {
        self.invoke(Service::Context, "exists", &self.master(), |req| {
            req.context("ctx", id)
        })
        .await
    }

    /// `getData`: the context `id`; a missing one is an error with `is_not_found()`
    /// (`Context <id> does not exist`).
    pub async fn get_context(&self, id: i32) -> Result<Context, OxError> {
        self.invoke(Service::Context, "getData", &self.master(), |req| {
            req.context("ctx", id)
        })
        .await
    }

    /// `list`: contexts whose name matches `pattern` (`*` wildcard).
    pub async fn list_contexts(&self, pattern: &str) -> Result<Vec<Context>, OxError> {
        self.invoke(Service::Context, "list", &self.master(), |req| {
            req.text("search_pattern", pattern)
        })
        .await
    }
}
