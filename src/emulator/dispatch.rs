//! The emulator's operations: one function per service that decodes the request's children
//! (checked against the operation's XSD element list) and calls [`OxState`].

use crate::ox::soap::types::{
    AccountDataOnCreate, Context, Group, IdOnly, Resource, User, UserModuleAccess,
};
use crate::ox::soap::Service;

use super::soap::{many, one, Call, ParsedRequest, Reply, SoapError};
use super::state::OxState;

/// Runs one operation against the state.
pub(super) fn dispatch(
    state: &mut OxState,
    service: Service,
    request: &ParsedRequest,
) -> Result<Reply, SoapError> {
    let wrapper = &request.wrapper;
    let ns = service.wrapper_ns();
    let op = wrapper.name.as_str();
    let call = |allowed: &[&str]| Call::new(wrapper, ns, allowed);
    let reply = match service {
        Service::Context => match context_create(state, op, &call)? {
            Some(reply) => Some(reply),
            None => context_other(state, op, &call)?,
        },
        Service::User => match user_write(state, op, &call)? {
            Some(reply) => Some(reply),
            None => user_read(state, op, &call)?,
        },
        Service::Group => group(state, op, &call)?,
        Service::Resource => resource(state, op, &call)?,
        Service::UserCopy => copy(state, op, &call)?,
        Service::SecondaryAccount => account(state, op, &call)?,
    };
    reply.ok_or_else(|| SoapError::Injected {
        exception: "RemoteException".into(),
        message: format!("The OX emulator does not implement {}.{op}", service.name()),
    })
}

/// Reads the request's children, allowing only the given element names.
type Reader<'r, 'a> = &'r dyn Fn(&[&str]) -> Result<Call<'a>, SoapError>;

/// OXContextService: the create operations.
fn context_create(
    state: &mut OxState,
    op: &str,
    call: Reader<'_, '_>,
) -> Result<Option<Reply>, SoapError> {
    let reply = match op {
        "create" => {
            let c = call(&["ctx", "admin_user", "auth", "schema_select_strategy"])?;
            one(state.create_context(
                c.auth()?.as_ref(),
                c.obj("ctx")?,
                c.obj("admin_user")?,
                None,
                None,
            )?)
        }
        "createModuleAccess" => {
            let c = call(&[
                "ctx",
                "admin_user",
                "access",
                "auth",
                "schema_select_strategy",
            ])?;
            let access: Option<UserModuleAccess> = c.obj("access")?;
            one(state.create_context(
                c.auth()?.as_ref(),
                c.obj("ctx")?,
                c.obj("admin_user")?,
                access,
                None,
            )?)
        }
        "createModuleAccessByName" => {
            // The live WSDL names the admin `admin_accessuser`, the OX source `admin_user`.
            let c = call(&[
                "ctx",
                "admin_accessuser",
                "admin_user",
                "access_combination_name",
                "auth",
                "schema_select_strategy",
            ])?;
            let admin = match c.obj::<User>("admin_accessuser")? {
                Some(a) => Some(a),
                None => c.obj("admin_user")?,
            };
            let name = c.text("access_combination_name");
            one(state.create_context(c.auth()?.as_ref(), c.obj("ctx")?, admin, None, name)?)
        }
        _ => return Ok(None),
    };
    Ok(Some(reply))
}

/// OXContextService: everything but the three create operations.
fn context_other(
    state: &mut OxState,
    op: &str,
    call: Reader<'_, '_>,
) -> Result<Option<Reply>, SoapError> {
    let reply = match op {
        "change" => {
            let c = call(&["ctx", "auth"])?;
            state.change_context(c.auth()?.as_ref(), c.obj("ctx")?)?;
            Reply::Void
        }
        "delete" => {
            let c = call(&["ctx", "auth"])?;
            state.delete_context(c.auth()?.as_ref(), c.obj("ctx")?)?;
            Reply::Void
        }
        "enable" | "disable" => {
            let c = call(&["ctx", "auth"])?;
            state.set_context_enabled(c.auth()?.as_ref(), c.obj("ctx")?, op == "enable")?;
            Reply::Void
        }
        "exists" => {
            let c = call(&["ctx", "auth"])?;
            Reply::Scalar(
                state
                    .context_exists(c.auth()?.as_ref(), c.obj("ctx")?)?
                    .to_string(),
            )
        }
        "getData" => {
            let c = call(&["ctx", "auth"])?;
            one(state.get_context(c.auth()?.as_ref(), c.obj("ctx")?)?)
        }
        "getAdminId" => {
            let c = call(&["ctx", "auth"])?;
            Reply::Scalar(
                state
                    .get_context_admin_id(c.auth()?.as_ref(), c.obj("ctx")?)?
                    .to_string(),
            )
        }
        "list" => {
            let c = call(&["search_pattern", "auth"])?;
            many(state.list_contexts(c.auth()?.as_ref(), c.text("search_pattern").as_deref())?)
        }
        "listAll" => {
            let c = call(&["auth"])?;
            many(state.list_contexts(c.auth()?.as_ref(), None)?)
        }
        _ => return Ok(None),
    };
    Ok(Some(reply))
}

/// OXUserService: the operations that change users.
fn user_write(
    state: &mut OxState,
    op: &str,
    call: Reader<'_, '_>,
) -> Result<Option<Reply>, SoapError> {
    let reply = match op {
        "create" => {
            let c = call(&["ctx", "usrdata", "auth"])?;
            one(state.create_user(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("usrdata")?, None)?)
        }
        "createByModuleAccess" => {
            let c = call(&["ctx", "usrdata", "access", "auth"])?;
            let access: Option<UserModuleAccess> = c.obj("access")?;
            one(state.create_user(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("usrdata")?, access)?)
        }
        "change" => {
            let c = call(&["ctx", "usrdata", "auth"])?;
            state.change_user(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("usrdata")?)?;
            Reply::Void
        }
        "changeByModuleAccess" => {
            let c = call(&["ctx", "user", "moduleAccess", "auth"])?;
            state.change_user_access(
                c.auth()?.as_ref(),
                c.obj("ctx")?,
                c.obj("user")?,
                c.obj("moduleAccess")?,
            )?;
            Reply::Void
        }
        "delete" => {
            let c = call(&["ctx", "user", "auth", "reassign"])?;
            let users: Vec<User> = c.obj("user")?.into_iter().collect();
            state.delete_user(c.auth()?.as_ref(), c.obj("ctx")?, users)?;
            Reply::Void
        }
        "deleteMultiple" => {
            let c = call(&["ctx", "users", "auth", "reassign"])?;
            state.delete_user(c.auth()?.as_ref(), c.obj("ctx")?, c.objs("users")?)?;
            Reply::Void
        }
        "exists" => {
            let c = call(&["ctx", "user", "auth"])?;
            Reply::Scalar(
                state
                    .user_exists(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("user")?)?
                    .to_string(),
            )
        }
        _ => return Ok(None),
    };
    Ok(Some(reply))
}

/// OXUserService: the operations that read users.
fn user_read(
    state: &mut OxState,
    op: &str,
    call: Reader<'_, '_>,
) -> Result<Option<Reply>, SoapError> {
    let reply = match op {
        "getData" => {
            let c = call(&["ctx", "user", "auth"])?;
            // A missing `user` is looked up as an empty reference, for OX's fault text.
            let user: User = c.obj("user")?.unwrap_or_default();
            let mut found = state.get_data(c.auth()?.as_ref(), c.obj("ctx")?, vec![user])?;
            one(found.swap_remove(0))
        }
        "getMultipleData" => {
            let c = call(&["ctx", "users", "auth"])?;
            many(state.get_data::<User>(c.auth()?.as_ref(), c.obj("ctx")?, c.objs("users")?)?)
        }
        "getModuleAccess" => {
            let c = call(&["ctx", "user", "auth"])?;
            one(state.get_user_access(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("user")?)?)
        }
        "getContextAdmin" => {
            let c = call(&["ctx", "auth"])?;
            one(state.get_context_admin(c.auth()?.as_ref(), c.obj("ctx")?)?)
        }
        "listAll" => {
            let c = call(&["ctx", "auth", "include_guests", "exclude_users"])?;
            many(state.list_users(c.auth()?.as_ref(), c.obj("ctx")?, None, false)?)
        }
        "list" => {
            let c = call(&[
                "ctx",
                "search_pattern",
                "auth",
                "include_guests",
                "exclude_users",
            ])?;
            let pattern = c.text("search_pattern");
            many(state.list_users(c.auth()?.as_ref(), c.obj("ctx")?, pattern.as_deref(), false)?)
        }
        "listCaseInsensitive" => {
            let c = call(&["ctx", "search_pattern", "auth"])?;
            let pattern = c.text("search_pattern");
            many(state.list_users(c.auth()?.as_ref(), c.obj("ctx")?, pattern.as_deref(), true)?)
        }
        _ => return Ok(None),
    };
    Ok(Some(reply))
}

/// OXGroupService.
fn group(state: &mut OxState, op: &str, call: Reader<'_, '_>) -> Result<Option<Reply>, SoapError> {
    let reply = match op {
        "create" => {
            let c = call(&["ctx", "grp", "auth"])?;
            one(state.create_group(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("grp")?)?)
        }
        "change" => {
            let c = call(&["ctx", "grp", "auth"])?;
            state.change_group(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("grp")?)?;
            Reply::Void
        }
        "delete" => {
            let c = call(&["ctx", "grp", "auth"])?;
            let groups: Vec<Group> = c.obj("grp")?.into_iter().collect();
            state.delete_groups(c.auth()?.as_ref(), c.obj("ctx")?, groups)?;
            Reply::Void
        }
        "deleteMultiple" => {
            let c = call(&["ctx", "grps", "auth"])?;
            state.delete_groups(c.auth()?.as_ref(), c.obj("ctx")?, c.objs("grps")?)?;
            Reply::Void
        }
        "getData" => {
            let c = call(&["ctx", "grp", "auth"])?;
            // A missing `grp` is looked up as an empty reference, for OX's fault text.
            let group: Group = c.obj("grp")?.unwrap_or_default();
            let mut found = state.get_data(c.auth()?.as_ref(), c.obj("ctx")?, vec![group])?;
            one(found.swap_remove(0))
        }
        "getMultipleData" => {
            let c = call(&["ctx", "grps", "auth"])?;
            many(state.get_data::<Group>(c.auth()?.as_ref(), c.obj("ctx")?, c.objs("grps")?)?)
        }
        "getMembers" => {
            let c = call(&["ctx", "grp", "auth"])?;
            many(state.group_members(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("grp")?)?)
        }
        "getDefaultGroup" => {
            let c = call(&["ctx", "auth"])?;
            one(state.get_default_group(c.auth()?.as_ref(), c.obj("ctx")?)?)
        }
        "list" => {
            let c = call(&["ctx", "pattern", "auth"])?;
            many(state.list_groups(
                c.auth()?.as_ref(),
                c.obj("ctx")?,
                c.text("pattern").as_deref(),
            )?)
        }
        "listAll" => {
            let c = call(&["ctx", "auth"])?;
            many(state.list_groups(c.auth()?.as_ref(), c.obj("ctx")?, None)?)
        }
        "listGroupsForUser" => {
            let c = call(&["ctx", "usr", "auth"])?;
            many(state.list_groups_for_user(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("usr")?)?)
        }
        "addMember" | "removeMember" => {
            let c = call(&["ctx", "grp", "members", "auth"])?;
            let add = op == "addMember";
            state.change_members(
                c.auth()?.as_ref(),
                c.obj("ctx")?,
                c.obj("grp")?,
                c.objs("members")?,
                add,
            )?;
            Reply::Void
        }
        _ => return Ok(None),
    };
    Ok(Some(reply))
}

/// OXResourceService.
fn resource(
    state: &mut OxState,
    op: &str,
    call: Reader<'_, '_>,
) -> Result<Option<Reply>, SoapError> {
    let reply = match op {
        "create" => {
            let c = call(&["ctx", "res", "auth"])?;
            one(state.create_resource(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("res")?)?)
        }
        "change" => {
            let c = call(&["ctx", "res", "auth"])?;
            state.change_resource(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("res")?)?;
            Reply::Void
        }
        "delete" => {
            let c = call(&["ctx", "res", "auth"])?;
            state.delete_resource(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("res")?)?;
            Reply::Void
        }
        "getData" => {
            let c = call(&["ctx", "res", "auth"])?;
            // A missing `res` is looked up as an empty reference, for OX's fault text.
            let resource: Resource = c.obj("res")?.unwrap_or_default();
            let mut found = state.get_data(c.auth()?.as_ref(), c.obj("ctx")?, vec![resource])?;
            one(found.swap_remove(0))
        }
        "getMultipleData" => {
            let c = call(&["ctx", "resources", "auth"])?;
            many(state.get_data::<Resource>(
                c.auth()?.as_ref(),
                c.obj("ctx")?,
                c.objs("resources")?,
            )?)
        }
        "list" => {
            let c = call(&["ctx", "pattern", "auth"])?;
            many(state.list_resources(
                c.auth()?.as_ref(),
                c.obj("ctx")?,
                c.text("pattern").as_deref(),
            )?)
        }
        "listAll" => {
            let c = call(&["ctx", "auth"])?;
            many(state.list_resources(c.auth()?.as_ref(), c.obj("ctx")?, None)?)
        }
        _ => return Ok(None),
    };
    Ok(Some(reply))
}

/// OXUserCopyService.
fn copy(state: &mut OxState, op: &str, call: Reader<'_, '_>) -> Result<Option<Reply>, SoapError> {
    let reply = match op {
        "copyUser" => {
            let c = call(&["user", "src", "dest", "auth"])?;
            one(state.copy_user(
                c.auth()?.as_ref(),
                c.obj("user")?,
                c.obj("src")?,
                c.obj("dest")?,
            )?)
        }
        _ => return Ok(None),
    };
    Ok(Some(reply))
}

/// OXSecondaryAccountService.
fn account(
    state: &mut OxState,
    op: &str,
    call: Reader<'_, '_>,
) -> Result<Option<Reply>, SoapError> {
    let reply = match op {
        "create" => {
            let c = call(&["accountDataOnCreate", "context", "users", "groups", "auth"])?;
            let data: Option<AccountDataOnCreate> = c.obj("accountDataOnCreate")?;
            let ctx = account_context(&c)?;
            state.create_account(
                c.auth()?.as_ref(),
                ctx,
                data,
                &c.ids("users")?,
                &c.ids("groups")?,
            )?;
            Reply::Void
        }
        "delete" => {
            let c = call(&["primaryAddress", "context", "users", "groups", "auth"])?;
            let ctx = account_context(&c)?;
            let address = c.text("primaryAddress");
            let found = state.delete_account(
                c.auth()?.as_ref(),
                ctx,
                address.as_deref(),
                &c.ids("users")?,
                &c.ids("groups")?,
            )?;
            Reply::Scalar(found.to_string())
        }
        "list" => {
            let c = call(&["context", "users", "groups", "auth"])?;
            let ctx = account_context(&c)?;
            many(state.list_accounts(
                c.auth()?.as_ref(),
                ctx,
                &c.ids("users")?,
                &c.ids("groups")?,
            )?)
        }
        _ => return Ok(None),
    };
    Ok(Some(reply))
}

fn account_context(call: &Call<'_>) -> Result<Option<Context>, SoapError> {
    Ok(call
        .obj::<IdOnly>("context")?
        .and_then(|c| c.id)
        .map(Context::with_id))
}
