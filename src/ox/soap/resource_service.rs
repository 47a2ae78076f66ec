//! OXResourceService calls (context-admin credentials): create, change, delete, getData, list.

use super::client::{decode, OxClient};
use super::envelope::{Request, Service};
use super::error::OxError;
use super::types::{Credentials, Resource};

impl OxClient {
    fn resource_request(op: &'static str, ctx: i32) -> Request {
        let mut req = Request::new(Service::Resource, op);
        req.context("ctx", ctx);
        req
    }

    /// `create`: returns the resource with its new `id`.
    pub async fn create_resource(
        &self,
        ctx: i32,
        resource: &Resource,
        auth: &Credentials,
    ) -> Result<Resource, OxError> {
        let mut req = Self::resource_request("create", ctx);
        req.object("res", resource).auth(auth);
        decode::one("OXResourceService.create", self.call(req, false).await?)
    }

    /// `change`: partial update of the resource identified by `id` (or `name`).
    pub async fn change_resource(
        &self,
        ctx: i32,
        resource: &Resource,
        auth: &Credentials,
    ) -> Result<(), OxError> {
        let mut req = Self::resource_request("change", ctx);
        req.object("res", resource).auth(auth);
        self.call(req, true).await.map(drop)
    }

    /// `delete` (by id, else name).
    pub async fn delete_resource(
        &self,
        ctx: i32,
        resource: &Resource,
        auth: &Credentials,
    ) -> Result<(), OxError> {
        let mut req = Self::resource_request("delete", ctx);
        req.object("res", resource).auth(auth);
        self.call(req, true).await.map(drop)
    }

    /// `getData`: the resource by id, else by name.
    pub async fn get_resource(
        &self,
        ctx: i32,
        resource: &Resource,
        auth: &Credentials,
    ) -> Result<Resource, OxError> {
        let mut req = Self::resource_request("getData", ctx);
        req.object("res", resource).auth(auth);
        decode::one("OXResourceService.getData", self.call(req, false).await?)
    }

    /// `list`: resources whose name matches `pattern` (`*` wildcard).
    pub async fn list_resources(
        &self,
        ctx: i32,
        pattern: &str,
        auth: &Credentials,
    ) -> Result<Vec<Resource>, OxError> {
        let mut req = Self::resource_request("list", ctx);
        req.text("pattern", pattern).auth(auth);
        decode::many("OXResourceService.list", self.call(req, false).await?)
    }
}
