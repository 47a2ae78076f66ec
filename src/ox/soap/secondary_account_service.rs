//! OXSecondaryAccountService calls (context-admin credentials; OX ≥ 7.10.6): functional
//! accounts. The context child is named `context` here, and users/groups are id-only objects.

use super::client::{decode, OxClient};
use super::envelope::{Request, Service};
use super::error::OxError;
use super::types::{Account, AccountDataOnCreate, Credentials, IdOnly};

impl OxClient {
    fn account_scope(req: &mut Request, ctx: i32, users: &[i32], groups: &[i32]) {
        req.object("context", &IdOnly::new(ctx));
        for &id in users {
            req.object("users", &IdOnly::new(id));
        }
        for &id in groups {
            req.object("groups", &IdOnly::new(id));
        }
    }

    /// `create`: adds the account for the given users and groups (at least one of them).
    pub async fn create_secondary_account(
        &self,
        ctx: i32,
        account: &AccountDataOnCreate,
        users: &[i32],
        groups: &[i32],
        auth: &Credentials,
    ) -> Result<(), OxError> {
        let mut req = Request::new(Service::SecondaryAccount, "create");
        req.object("accountDataOnCreate", account);
        Self::account_scope(&mut req, ctx, users, groups);
        req.auth(auth);
        self.call(req, true).await.map(drop)
    }

    /// `delete`: removes the account with `primary_address` from the given users and groups
    /// (group 0 = all users). Returns whether an account was found.
    pub async fn delete_secondary_account(
        &self,
        ctx: i32,
        primary_address: &str,
        users: &[i32],
        groups: &[i32],
        auth: &Credentials,
    ) -> Result<bool, OxError> {
        let mut req = Request::new(Service::SecondaryAccount, "delete");
        req.text("primaryAddress", primary_address);
        Self::account_scope(&mut req, ctx, users, groups);
        req.auth(auth);
        decode::boolean(
            "OXSecondaryAccountService.delete",
            self.call(req, false).await?,
        )
    }

    /// `list`: the accounts of the given users and groups (none = all of the context).
    pub async fn list_secondary_accounts(
        &self,
        ctx: i32,
        users: &[i32],
        groups: &[i32],
        auth: &Credentials,
    ) -> Result<Vec<Account>, OxError> {
        let mut req = Request::new(Service::SecondaryAccount, "list");
        Self::account_scope(&mut req, ctx, users, groups);
        req.auth(auth);
        decode::many(
            "OXSecondaryAccountService.list",
            self.call(req, false).await?,
        )
    }
}
