//! OXResourceService calls (context-admin credentials): create, change, delete, getData, list.

use super::client::OxClient;
use super::envelope::Service;
use super::error::OxError;
use super::types::{Credentials, Resource};

impl OxClient {
    /// `create`: returns the resource with its new `id`.
    pub async fn create_resource(
        &self,
        ctx: i32,
        resource: &Resource,
        auth: &Credentials,
    ) -> Result<Resource, OxError> {
        self.invoke_in_context(Service::Resource, "create", ctx, auth, |req| {
            req.object("res", resource)
        })
        .await
    }

    /// `change`: partial update of the resource identified by `id` (or `name`).
    pub async fn change_resource(
        &self,
        ctx: i32,
        resource: &Resource,
        auth: &Credentials,
    ) -> Result<(), OxError> {
        self.invoke_in_context(Service::Resource, "change", ctx, auth, |req| {
            req.object("res", resource)
        })
        .await
    }

    /// `delete` (by id, else name).
    pub async fn delete_resource(
        &self,
        ctx: i32,
        resource: &Resource,
        auth: &Credentials,
    ) -> Result<(), OxError> {
        self.invoke_in_context(Service::Resource, "delete", ctx, auth, |req| {
            req.object("res", resource)
        })
        .await
    }

    /// `getData`: the resource by id, else by name.
    pub async fn get_resource(
        &self,
        ctx: i32,
        resource: &Resource,
        auth: &Credentials,
    ) -> Result<Resource, OxError> {
        self.invoke_in_context(Service::Resource, "getData", ctx, auth, |req| {
            req.object("res", resource)
        })
        .await
    }

    /// `list`: resources whose name matches `pattern` (`*` wildcard).
    pub async fn list_resources(
        &self,
        ctx: i32,
        pattern: &str,
        auth: &Credentials,
    ) -> Result<Vec<Resource>, OxError> {
        self.invoke_in_context(Service::Resource, "list", ctx, auth, |req| {
            req.text("pattern", pattern)
        })
        .await
    }
}
