//! The UDM modules of the OX object kinds, which are their message topics.
//!
//! Plain names, below every kind and the state store, so that one module can tell a remembered
//! object's kind by its `object_type` without importing that kind's file (a group checks that
//! a member is a user, the state store that an object is a context). Each kind's file names
//! its own as `TOPIC` and its [`super::kind_parts::Kind::topic`].

pub const CONTEXT: &str = "oxmail/oxcontext";
pub const ACCESS_PROFILE: &str = "oxmail/accessprofile";
pub const USER: &str = "users/user";
pub const GROUP: &str = "groups/group";
pub const FUNCTIONAL_ACCOUNT: &str = "oxmail/functional_account";
pub const RESOURCE: &str = "oxresources/oxresources";
