//! OXSecondaryAccountService calls (context-admin credentials; OX ≥ 7.10.6): functional
//! accounts. The context child is named `context` here, and users/groups are id-only objects.

use super::client::OxClient;
use super::envelope::{Request, Service};
use super::error::OxError;
use super::types::{Account, AccountDataOnCreate, Credentials, IdOnly};

/// The children after the operation's own: the context, then the users and groups addressed.
fn account_scope<'r>(
    req: &'r mut Request,
    ctx: i32,
    users: &[i32],
    groups: &[i32],
) -> &'r mut Request {
    req.object("context", &IdOnly::new(ctx));
    for &id in users {
        req.object("users", &IdOnly::new(id));
    }
    for &id in groups {
        req.object("groups", &IdOnly::new(id));
    }
    req
}

impl OxClient {
    /// `create`: adds the account for the given users and groups (at least one of them).
    pub async fn create_secondary_account(
        &self,
        ctx: i32,
        account: &AccountDataOnCreate,
        users: &[i32],
        groups: &[i32],
        auth: &Credentials,
    ) -> Result<(), OxError> {
        self.invoke(Service::SecondaryAccount, "create", auth, |req| {
            account_scope(
                req.object("accountDataOnCreate", account),
                ctx,
                users,
                groups,
            )
        })
        .await
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
        self.invoke(Service::SecondaryAccount, "delete", auth, |req| {
            account_scope(
                req.text("primaryAddress", primary_address),
                ctx,
                users,
                groups,
            )
        })
        .await
    }

    /// `list`: the accounts of the given users and groups (none = all of the context).
    pub async fn list_secondary_accounts(
        &self,
        ctx: i32,
        users: &[i32],
        groups: &[i32],
        auth: &Credentials,
    ) -> Result<Vec<Account>, OxError> {
        self.invoke(Service::SecondaryAccount, "list", auth, |req| {
            account_scope(req, ctx, users, groups)
        })
        .await
    }
}
