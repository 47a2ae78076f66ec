//! The emulator's SOAP layer: reads a request the way OX (Apache CXF + JAXB) does, dispatches
//! it to [`OxState`], and writes the answer the way OX does (`<op>Response` with `ns2`…`ns5`
//! prefixes and nil elements, an empty Body for void operations, faults with
//! `; exceptionId …` and the detail element).
//!
//! Tolerance (`ox-soap.md` §2.1): children in any order, qualified or unqualified, `xsi:nil` =
//! absent, `xsi:type` and SOAPAction ignored, SOAP headers ignored. Rejected with
//! `soap:Client`: malformed XML, a non-SOAP-1.1 envelope, an unknown operation, and any element
//! in a foreign namespace or unknown to its type.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::ox::soap::types::{
    AccountDataOnCreate, Context, Credentials, DecodeError, Group, IdOnly, Resource, SoapObject,
    User, UserModuleAccess,
};
use crate::ox::soap::xml::{self, Element, Ns, Prefixes, XmlWriter};
use crate::ox::soap::Service;

use super::state::{OxFault, OxState};

/// A request that could not be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SoapError {
    /// `soap:Client`, no detail: the request could not be read.
    Client(String),
    /// `soap:VersionMismatch`: not a SOAP 1.1 envelope.
    VersionMismatch(String),
    /// `soap:Server` with the exception's detail element.
    Server(OxFault),
    /// `soap:Server` with a detail element given by name (fault injection, operations the
    /// emulator does not implement).
    Injected { exception: String, message: String },
}

impl From<OxFault> for SoapError {
    fn from(fault: OxFault) -> Self {
        SoapError::Server(fault)
    }
}

impl From<DecodeError> for SoapError {
    fn from(error: DecodeError) -> Self {
        match error {
            DecodeError::Unexpected { name, uri } if uri.is_empty() => SoapError::Client(format!(
                "Unexpected element \"{name}\". Please remove that element from SOAP request."
            )),
            DecodeError::Unexpected { name, uri } => SoapError::Client(format!(
                "Unexpected element \"{name}\" (URI={uri}). Please remove that element from SOAP request."
            )),
            DecodeError::Invalid { value, .. } => {
                SoapError::Client(format!("Unmarshalling Error: For input string: \"{value}\""))
            }
        }
    }
}

/// A request read up to its operation wrapper.
#[derive(Debug)]
pub struct ParsedRequest {
    pub wrapper: Element,
}

impl ParsedRequest {
    pub fn operation(&self) -> &str {
        &self.wrapper.name
    }
}

/// Operation names declared in a service's WSDL (portType and binding).
fn wsdl_operations(service: Service) -> &'static [String] {
    static OPS: OnceLock<HashMap<Service, Vec<String>>> = OnceLock::new();
    let all = OPS.get_or_init(|| {
        Service::ALL
            .into_iter()
            .map(|s| {
                let wsdl = super::http::wsdl_template(s);
                let mut ops: Vec<String> = wsdl
                    .match_indices("<wsdl:operation name=\"")
                    .filter_map(|(i, m)| {
                        let rest = &wsdl[i + m.len()..];
                        rest.find('"').map(|end| rest[..end].to_string())
                    })
                    .collect();
                ops.sort();
                ops.dedup();
                (s, ops)
            })
            .collect()
    });
    all.get(&service).map_or(&[], Vec::as_slice)
}

/// Parses the envelope and finds the operation wrapper (the Body's first child).
pub fn parse_request(service: Service, body: &[u8]) -> Result<ParsedRequest, SoapError> {
    let root = xml::parse(body)
        .map_err(|e| SoapError::Client(format!("Error reading XMLStreamReader: {e}")))?;
    if root.is(Ns::Soap12, "Envelope") {
        return Err(SoapError::VersionMismatch(
            "A SOAP 1.2 message is not valid when sent to a SOAP 1.1 only endpoint.".into(),
        ));
    }
    if !root.is(Ns::Soap, "Envelope") {
        return Err(SoapError::VersionMismatch(format!(
            "Invalid SOAP envelope: {{{}}}{}",
            root.uri(),
            root.name
        )));
    }
    let mut root = root;
    let body_index = root
        .children
        .iter()
        .position(|c| c.is(Ns::Soap, "Body"))
        .ok_or_else(|| SoapError::Client("No SOAP Body in the envelope".into()))?;
    let mut body = root.children.swap_remove(body_index);
    if body.children.is_empty() {
        return Err(SoapError::Client(
            "Message part was not recognized.  (Does it exist in service WSDL?)".into(),
        ));
    }
    let wrapper = body.children.swap_remove(0);
    let known =
        wrapper.ns == service.wrapper_ns() && wsdl_operations(service).contains(&wrapper.name);
    if !known {
        return Err(SoapError::Client(format!(
            "Message part {{{}}}{} was not recognized.  (Does it exist in service WSDL?)",
            wrapper.uri(),
            wrapper.name
        )));
    }
    Ok(ParsedRequest { wrapper })
}

/// The children of one request wrapper, checked against the operation's XSD element list.
struct Call<'a> {
    wrapper: &'a Element,
}

impl<'a> Call<'a> {
    fn new(wrapper: &'a Element, ns: Ns, allowed: &[&str]) -> Result<Call<'a>, SoapError> {
        for child in &wrapper.children {
            let ns_ok = child.ns == ns || child.ns == Ns::None;
            if !ns_ok || !allowed.contains(&child.name.as_str()) {
                return Err(DecodeError::unexpected(child).into());
            }
        }
        Ok(Call { wrapper })
    }

    /// Non-nil children named `name`.
    fn all(&self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.wrapper
            .children
            .iter()
            .filter(move |c| c.name == name && !c.nil)
    }

    fn obj<T: SoapObject>(&self, name: &'a str) -> Result<Option<T>, SoapError> {
        // JAXB keeps the last occurrence of a single-valued child.
        match self.all(name).last() {
            Some(el) => Ok(Some(T::decode(el, true)?)),
            None => Ok(None),
        }
    }

    fn objs<T: SoapObject>(&self, name: &'a str) -> Result<Vec<T>, SoapError> {
        self.all(name)
            .map(|el| T::decode(el, true).map_err(SoapError::from))
            .collect()
    }

    fn text(&self, name: &'a str) -> Option<String> {
        self.all(name).last().map(|el| el.text.clone())
    }

    fn auth(&self) -> Result<Option<Credentials>, SoapError> {
        self.obj("auth")
    }

    fn ids(&self, name: &'a str) -> Result<Vec<i32>, SoapError> {
        Ok(self
            .objs::<IdOnly>(name)?
            .into_iter()
            .filter_map(|o| o.id)
            .collect())
    }
}

/// What a served operation answers.
pub enum Reply {
    Void,
    Objects(Box<dyn FnOnce(&mut XmlWriter)>),
    Scalar(String),
}

fn one<T: SoapObject + 'static>(value: T) -> Reply {
    Reply::Objects(Box::new(move |w| value.write_as(w, w_ns(w), "return")))
}

fn many<T: SoapObject + 'static>(values: Vec<T>) -> Reply {
    Reply::Objects(Box::new(move |w| {
        let ns = w_ns(w);
        for v in &values {
            v.write_as(w, ns, "return");
        }
    }))
}

fn w_ns(w: &XmlWriter) -> Ns {
    w.prefixes().default_ns.unwrap_or(Ns::Tns)
}

/// Runs one operation against the state.
pub fn dispatch(
    state: &mut OxState,
    service: Service,
    request: &ParsedRequest,
) -> Result<Reply, SoapError> {
    let wrapper = &request.wrapper;
    let ns = service.wrapper_ns();
    let op = wrapper.name.as_str();
    let call = |allowed: &[&str]| Call::new(wrapper, ns, allowed);
    use Service as S;
    let reply = match (service, op) {
        (S::Context, "create") => {
            let c = call(&["ctx", "admin_user", "auth", "schema_select_strategy"])?;
            one(state.create_context(
                c.auth()?.as_ref(),
                c.obj("ctx")?,
                c.obj("admin_user")?,
                None,
                None,
            )?)
        }
        (S::Context, "createModuleAccess") => {
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
        (S::Context, "createModuleAccessByName") => {
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
        (S::Context, "change") => {
            let c = call(&["ctx", "auth"])?;
            state.change_context(c.auth()?.as_ref(), c.obj("ctx")?)?;
            Reply::Void
        }
        (S::Context, "delete") => {
            let c = call(&["ctx", "auth"])?;
            state.delete_context(c.auth()?.as_ref(), c.obj("ctx")?)?;
            Reply::Void
        }
        (S::Context, "enable" | "disable") => {
            let c = call(&["ctx", "auth"])?;
            state.set_context_enabled(c.auth()?.as_ref(), c.obj("ctx")?, op == "enable")?;
            Reply::Void
        }
        (S::Context, "exists") => {
            let c = call(&["ctx", "auth"])?;
            Reply::Scalar(
                state
                    .context_exists(c.auth()?.as_ref(), c.obj("ctx")?)?
                    .to_string(),
            )
        }
        (S::Context, "getData") => {
            let c = call(&["ctx", "auth"])?;
            one(state.get_context(c.auth()?.as_ref(), c.obj("ctx")?)?)
        }
        (S::Context, "getAdminId") => {
            let c = call(&["ctx", "auth"])?;
            Reply::Scalar(
                state
                    .get_context_admin_id(c.auth()?.as_ref(), c.obj("ctx")?)?
                    .to_string(),
            )
        }
        (S::Context, "list") => {
            let c = call(&["search_pattern", "auth"])?;
            many(state.list_contexts(c.auth()?.as_ref(), c.text("search_pattern").as_deref())?)
        }
        (S::Context, "listAll") => {
            let c = call(&["auth"])?;
            many(state.list_contexts(c.auth()?.as_ref(), None)?)
        }

        (S::User, "create") => {
            let c = call(&["ctx", "usrdata", "auth"])?;
            one(state.create_user(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("usrdata")?, None)?)
        }
        (S::User, "createByModuleAccess") => {
            let c = call(&["ctx", "usrdata", "access", "auth"])?;
            let access: Option<UserModuleAccess> = c.obj("access")?;
            one(state.create_user(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("usrdata")?, access)?)
        }
        (S::User, "change") => {
            let c = call(&["ctx", "usrdata", "auth"])?;
            state.change_user(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("usrdata")?)?;
            Reply::Void
        }
        (S::User, "changeByModuleAccess") => {
            let c = call(&["ctx", "user", "moduleAccess", "auth"])?;
            state.change_user_access(
                c.auth()?.as_ref(),
                c.obj("ctx")?,
                c.obj("user")?,
                c.obj("moduleAccess")?,
            )?;
            Reply::Void
        }
        (S::User, "delete") => {
            let c = call(&["ctx", "user", "auth", "reassign"])?;
            let users: Vec<User> = c.obj("user")?.into_iter().collect();
            state.delete_user(c.auth()?.as_ref(), c.obj("ctx")?, users)?;
            Reply::Void
        }
        (S::User, "deleteMultiple") => {
            let c = call(&["ctx", "users", "auth", "reassign"])?;
            state.delete_user(c.auth()?.as_ref(), c.obj("ctx")?, c.objs("users")?)?;
            Reply::Void
        }
        (S::User, "exists") => {
            let c = call(&["ctx", "user", "auth"])?;
            Reply::Scalar(
                state
                    .user_exists(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("user")?)?
                    .to_string(),
            )
        }
        (S::User, "getData") => {
            let c = call(&["ctx", "user", "auth"])?;
            // A missing `user` is looked up as an empty reference, for OX's fault text.
            let user: User = c.obj("user")?.unwrap_or_default();
            let mut found = state.get_data(c.auth()?.as_ref(), c.obj("ctx")?, vec![user])?;
            one(found.swap_remove(0))
        }
        (S::User, "getMultipleData") => {
            let c = call(&["ctx", "users", "auth"])?;
            many(state.get_data::<User>(c.auth()?.as_ref(), c.obj("ctx")?, c.objs("users")?)?)
        }
        (S::User, "getModuleAccess") => {
            let c = call(&["ctx", "user", "auth"])?;
            one(state.get_user_access(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("user")?)?)
        }
        (S::User, "getContextAdmin") => {
            let c = call(&["ctx", "auth"])?;
            one(state.get_context_admin(c.auth()?.as_ref(), c.obj("ctx")?)?)
        }
        (S::User, "listAll") => {
            let c = call(&["ctx", "auth", "include_guests", "exclude_users"])?;
            many(state.list_users(c.auth()?.as_ref(), c.obj("ctx")?, None, false)?)
        }
        (S::User, "list") => {
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
        (S::User, "listCaseInsensitive") => {
            let c = call(&["ctx", "search_pattern", "auth"])?;
            let pattern = c.text("search_pattern");
            many(state.list_users(c.auth()?.as_ref(), c.obj("ctx")?, pattern.as_deref(), true)?)
        }

        (S::Group, "create") => {
            let c = call(&["ctx", "grp", "auth"])?;
            one(state.create_group(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("grp")?)?)
        }
        (S::Group, "change") => {
            let c = call(&["ctx", "grp", "auth"])?;
            state.change_group(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("grp")?)?;
            Reply::Void
        }
        (S::Group, "delete") => {
            let c = call(&["ctx", "grp", "auth"])?;
            let groups: Vec<Group> = c.obj("grp")?.into_iter().collect();
            state.delete_groups(c.auth()?.as_ref(), c.obj("ctx")?, groups)?;
            Reply::Void
        }
        (S::Group, "deleteMultiple") => {
            let c = call(&["ctx", "grps", "auth"])?;
            state.delete_groups(c.auth()?.as_ref(), c.obj("ctx")?, c.objs("grps")?)?;
            Reply::Void
        }
        (S::Group, "getData") => {
            let c = call(&["ctx", "grp", "auth"])?;
            // A missing `grp` is looked up as an empty reference, for OX's fault text.
            let group: Group = c.obj("grp")?.unwrap_or_default();
            let mut found = state.get_data(c.auth()?.as_ref(), c.obj("ctx")?, vec![group])?;
            one(found.swap_remove(0))
        }
        (S::Group, "getMultipleData") => {
            let c = call(&["ctx", "grps", "auth"])?;
            many(state.get_data::<Group>(c.auth()?.as_ref(), c.obj("ctx")?, c.objs("grps")?)?)
        }
        (S::Group, "getMembers") => {
            let c = call(&["ctx", "grp", "auth"])?;
            many(state.group_members(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("grp")?)?)
        }
        (S::Group, "getDefaultGroup") => {
            let c = call(&["ctx", "auth"])?;
            one(state.get_default_group(c.auth()?.as_ref(), c.obj("ctx")?)?)
        }
        (S::Group, "list") => {
            let c = call(&["ctx", "pattern", "auth"])?;
            many(state.list_groups(
                c.auth()?.as_ref(),
                c.obj("ctx")?,
                c.text("pattern").as_deref(),
            )?)
        }
        (S::Group, "listAll") => {
            let c = call(&["ctx", "auth"])?;
            many(state.list_groups(c.auth()?.as_ref(), c.obj("ctx")?, None)?)
        }
        (S::Group, "listGroupsForUser") => {
            let c = call(&["ctx", "usr", "auth"])?;
            many(state.list_groups_for_user(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("usr")?)?)
        }
        (S::Group, "addMember" | "removeMember") => {
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

        (S::Resource, "create") => {
            let c = call(&["ctx", "res", "auth"])?;
            one(state.create_resource(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("res")?)?)
        }
        (S::Resource, "change") => {
            let c = call(&["ctx", "res", "auth"])?;
            state.change_resource(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("res")?)?;
            Reply::Void
        }
        (S::Resource, "delete") => {
            let c = call(&["ctx", "res", "auth"])?;
            state.delete_resource(c.auth()?.as_ref(), c.obj("ctx")?, c.obj("res")?)?;
            Reply::Void
        }
        (S::Resource, "getData") => {
            let c = call(&["ctx", "res", "auth"])?;
            // A missing `res` is looked up as an empty reference, for OX's fault text.
            let resource: Resource = c.obj("res")?.unwrap_or_default();
            let mut found = state.get_data(c.auth()?.as_ref(), c.obj("ctx")?, vec![resource])?;
            one(found.swap_remove(0))
        }
        (S::Resource, "getMultipleData") => {
            let c = call(&["ctx", "resources", "auth"])?;
            many(state.get_data::<Resource>(
                c.auth()?.as_ref(),
                c.obj("ctx")?,
                c.objs("resources")?,
            )?)
        }
        (S::Resource, "list") => {
            let c = call(&["ctx", "pattern", "auth"])?;
            many(state.list_resources(
                c.auth()?.as_ref(),
                c.obj("ctx")?,
                c.text("pattern").as_deref(),
            )?)
        }
        (S::Resource, "listAll") => {
            let c = call(&["ctx", "auth"])?;
            many(state.list_resources(c.auth()?.as_ref(), c.obj("ctx")?, None)?)
        }

        (S::UserCopy, "copyUser") => {
            let c = call(&["user", "src", "dest", "auth"])?;
            one(state.copy_user(
                c.auth()?.as_ref(),
                c.obj("user")?,
                c.obj("src")?,
                c.obj("dest")?,
            )?)
        }

        (S::SecondaryAccount, "create") => {
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
        (S::SecondaryAccount, "delete") => {
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
        (S::SecondaryAccount, "list") => {
            let c = call(&["context", "users", "groups", "auth"])?;
            let ctx = account_context(&c)?;
            many(state.list_accounts(
                c.auth()?.as_ref(),
                ctx,
                &c.ids("users")?,
                &c.ids("groups")?,
            )?)
        }

        _ => {
            return Err(SoapError::Injected {
                exception: "RemoteException".into(),
                message: format!("The OX emulator does not implement {}.{op}", service.name()),
            })
        }
    };
    Ok(reply)
}

fn account_context(call: &Call<'_>) -> Result<Option<Context>, SoapError> {
    Ok(call
        .obj::<IdOnly>("context")?
        .and_then(|c| c.id)
        .map(Context::with_id))
}

const RESPONSE_NAMESPACES: [Ns; 5] = [Ns::Do, Ns::Cred, Ns::Rmi, Ns::Exc, Ns::Xsi];

fn server_namespaces(w: &XmlWriter, wrapper_ns: Ns) -> String {
    let mut decl = w.prefixes().declarations(&[wrapper_ns]);
    decl.push_str(&w.prefixes().declarations(&RESPONSE_NAMESPACES));
    decl
}

const ENVELOPE_START: &str =
    "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>";
const ENVELOPE_END: &str = "</soap:Body></soap:Envelope>";

/// The answer of a void operation (`examples/VOID.resp.xml`).
pub const VOID_RESPONSE: &str =
    "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body/></soap:Envelope>";

/// Writes a successful answer.
pub fn write_reply(service: Service, op: &str, reply: Reply, nil_for_none: bool) -> String {
    let ns = service.wrapper_ns();
    let mut w = XmlWriter::new(Prefixes::server(ns), nil_for_none);
    let content = match reply {
        Reply::Void => return VOID_RESPONSE.to_string(),
        Reply::Objects(write) => write,
        Reply::Scalar(text) => Box::new(move |w: &mut XmlWriter| w.leaf(ns, "return", &text)),
    };
    let wrapper = format!("{op}Response");
    w.raw(ENVELOPE_START);
    let decl = server_namespaces(&w, ns);
    w.open_with(ns, &wrapper, &decl);
    content(&mut w);
    w.close(ns, &wrapper);
    w.raw(ENVELOPE_END);
    w.finish()
}

/// Writes a fault answer; `exception_id` is appended to OX's own faults.
pub fn write_fault(service: Service, error: &SoapError, exception_id: &str) -> String {
    let ns = service.wrapper_ns();
    let mut w = XmlWriter::new(Prefixes::server(ns), true);
    let (code, message, detail) = match error {
        SoapError::Client(m) => ("soap:Client", m.clone(), None),
        SoapError::VersionMismatch(m) => ("soap:VersionMismatch", m.clone(), None),
        SoapError::Server(fault) => (
            "soap:Server",
            format!("{}; exceptionId {exception_id}", fault.message),
            fault.kind.detail_name().map(str::to_string),
        ),
        SoapError::Injected { exception, message } => (
            "soap:Server",
            format!("{message}; exceptionId {exception_id}"),
            Some(exception.clone()),
        ),
    };
    w.raw(ENVELOPE_START);
    w.raw("<soap:Fault><faultcode>");
    w.raw(code);
    w.raw("</faultcode>");
    w.leaf(Ns::None, "faultstring", &message);
    if let Some(exception) = detail.filter(|e| is_xml_name(e)) {
        w.raw("<detail>");
        let decl = server_namespaces(&w, ns);
        w.open_with(ns, &exception, &decl);
        w.open(ns, &exception);
        w.nil(ns, "Exception");
        match exception.as_str() {
            "InvalidDataException" => w.nil(Ns::Exc, "objectname"),
            "RemoteException" => w.leaf(Ns::Rmi, "message", &message),
            _ => {}
        }
        w.close(ns, &exception);
        w.close(ns, &exception);
        w.raw("</detail>");
    }
    w.raw("</soap:Fault>");
    w.raw(ENVELOPE_END);
    w.finish()
}

/// Injected exception names go into markup, so they must be plain names.
fn is_xml_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
