//! SOAP 1.1 envelopes: the services and their namespaces, request building (qualified, schema
//! order, escaped), response and fault parsing, and password redaction for debug logs.

use super::error::{Fault, FaultKind, OxError, OxErrorKind};
use super::types::{Context, Credentials, SoapObject};
use super::xml::{self, Element, Ns, Prefixes, XmlWriter};

/// The OX SOAP services this crate speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Service {
    Context,
    User,
    Group,
    Resource,
    UserCopy,
    SecondaryAccount,
}

impl Service {
    /// All services, in the order of `ox-soap.md`.
    pub const ALL: [Service; 6] = [
        Service::Context,
        Service::User,
        Service::Group,
        Service::Resource,
        Service::UserCopy,
        Service::SecondaryAccount,
    ];

    /// The endpoint name under `/webservices/`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Context => "OXContextService",
            Service::User => "OXUserService",
            Service::Group => "OXGroupService",
            Service::Resource => "OXResourceService",
            Service::UserCopy => "OXUserCopyService",
            Service::SecondaryAccount => "OXSecondaryAccountService",
        }
    }

    /// The service for an endpoint name.
    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The namespace of the request/response wrappers and their direct children.
    pub fn wrapper_ns(self) -> Ns {
        match self {
            Service::UserCopy => Ns::Copy,
            _ => Ns::Tns,
        }
    }
}

const ENVELOPE_NAMESPACES: [Ns; 5] = [Ns::Soap, Ns::Tns, Ns::Copy, Ns::Do, Ns::Cred];

/// A request being written: envelope, wrapper `<op>`, then the children in call order (callers
/// add them in schema order).
pub(crate) struct Request {
    pub(crate) service: Service,
    pub(crate) operation: &'static str,
    w: XmlWriter,
}

impl Request {
    pub(crate) fn new(service: Service, operation: &'static str) -> Request {
        let prefixes = Prefixes::CLIENT;
        let mut w = XmlWriter::guarded(prefixes, false);
        w.raw(&format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope{}><soapenv:Body>",
            prefixes.declarations(&ENVELOPE_NAMESPACES)
        ));
        w.open(service.wrapper_ns(), operation);
        Request {
            service,
            operation,
            w,
        }
    }

    /// A data-object child, e.g. `<tns:usrdata>…</tns:usrdata>`.
    pub(crate) fn object<T: SoapObject>(&mut self, name: &str, value: &T) -> &mut Request {
        value.write_as(&mut self.w, self.service.wrapper_ns(), name);
        self
    }

    /// A context reference `<tns:{name}><do:id>…</do:id></tns:{name}>`.
    pub(crate) fn context(&mut self, name: &str, id: i32) -> &mut Request {
        self.object(name, &Context::with_id(id))
    }

    /// A simple child, e.g. `<tns:pattern>*</tns:pattern>`.
    pub(crate) fn text(&mut self, name: &str, value: &str) -> &mut Request {
        self.w.leaf(self.service.wrapper_ns(), name, value);
        self
    }

    /// `<tns:auth><cred:login/><cred:password/></tns:auth>`.
    pub(crate) fn auth(&mut self, credentials: &Credentials) -> &mut Request {
        self.object("auth", credentials)
    }

    /// The first field (as `usrdata/sur_name`) with a character XML 1.0 forbids that may not
    /// be dropped; such a request must not be sent.
    pub(crate) fn refused_field(&self) -> Option<&str> {
        self.w.guard().and_then(|g| g.refused.as_deref())
    }

    /// Descriptive fields whose forbidden characters were dropped.
    pub(crate) fn dropped_fields(&self) -> &[String] {
        self.w.guard().map_or(&[], |g| g.dropped.as_slice())
    }

    pub(crate) fn finish(mut self) -> String {
        self.w.close(self.service.wrapper_ns(), self.operation);
        self.w.raw("</soapenv:Body></soapenv:Envelope>");
        self.w.finish()
    }
}

/// Reads an HTTP answer: the `<op>Response` wrapper for operations with a result, `None` for
/// void ones, or the error (fault, HTTP status, not SOAP).
pub fn read_response(
    operation: &str,
    service: Service,
    op: &str,
    status: u16,
    body: &[u8],
    void: bool,
) -> Result<Option<Element>, OxError> {
    let success = (200..300).contains(&status);
    let not_soap = |detail: String| {
        if success {
            OxError::new(OxErrorKind::NotSoap, operation, detail)
        } else {
            OxError::new(OxErrorKind::Http(status), operation, detail)
        }
    };
    let root = xml::parse(body)
        .map_err(|e| not_soap(e.to_string()).with_boxed_source(Some(Box::new(e))))?;
    if !root.is(Ns::Soap, "Envelope") {
        return Err(not_soap(format!("root element is {:?}", root.name)));
    }
    let Some(body) = root.children.iter().find(|c| c.is(Ns::Soap, "Body")) else {
        return Err(not_soap("the envelope has no Body".into()));
    };
    if let Some(fault) = body.children.iter().find(|c| c.is(Ns::Soap, "Fault")) {
        return Err(OxError::from_fault(operation, parse_fault(fault)));
    }
    if !success {
        return Err(OxError::new(
            OxErrorKind::Http(status),
            operation,
            "no fault",
        ));
    }
    if void {
        // Void operations answer with an empty Body; whatever else is there is ignored.
        return Ok(None);
    }
    let wanted = format!("{op}Response");
    body.children
        .iter()
        .find(|c| c.ns == service.wrapper_ns() && c.name == wanted)
        .cloned()
        .map(Some)
        .ok_or_else(|| {
            OxError::new(
                OxErrorKind::Decode,
                operation,
                format!("no {wanted} element"),
            )
        })
}

/// Parses a `soap:Fault` element (children are unqualified in SOAP 1.1, but accept any).
pub fn parse_fault(fault: &Element) -> Fault {
    let text_of = |name: &str| {
        fault
            .children
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.text.trim().to_string())
            .unwrap_or_default()
    };
    let code_text = text_of("faultcode");
    let code = code_text
        .rsplit_once(':')
        .map_or(code_text.as_str(), |(_, local)| local)
        .to_string();
    let faultstring = text_of("faultstring");
    let (message, exception_id) = Fault::split_fault_string(&faultstring);
    let kind = fault
        .children
        .iter()
        .find(|c| c.name == "detail")
        .and_then(|d| d.children.first())
        .map(|exception| FaultKind::from_detail_name(&exception.name))
        .unwrap_or(if code == "Client" {
            FaultKind::Client
        } else {
            FaultKind::Other
        });
    Fault {
        code,
        message: message.to_string(),
        exception_id: exception_id.map(str::to_string),
        kind,
    }
}

/// The `return` children of a response wrapper (nil ones skipped).
pub(crate) fn returns(wrapper: &Element) -> impl Iterator<Item = &Element> {
    let ns = wrapper.ns;
    wrapper
        .children
        .iter()
        .filter(move |c| c.name == "return" && (c.ns == ns || c.ns == Ns::None) && !c.nil)
}

/// Replaces the text of every element whose local name ends in `password` (any case:
/// `password`, `transportPassword`) with `***`, for debug logs.
pub fn redact_passwords(envelope: &str) -> String {
    let mut out = String::with_capacity(envelope.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(pos) = envelope[search..].find('<') {
        let tag_start = search + pos;
        search = tag_start + 1;
        let Some(tag_len) = envelope[tag_start..].find('>') else {
            break;
        };
        let tag = &envelope[tag_start + 1..tag_start + tag_len];
        if tag.starts_with('/') || tag.ends_with('/') {
            continue;
        }
        let name = tag.split_whitespace().next().unwrap_or("");
        let local = name.rsplit(':').next().unwrap_or(name);
        if !local.to_ascii_lowercase().ends_with("password") {
            continue;
        }
        let text_start = tag_start + tag_len + 1;
        let text_len = envelope[text_start..]
            .find('<')
            .unwrap_or(envelope.len() - text_start);
        out.push_str(&envelope[copied..text_start]);
        out.push_str("***");
        copied = text_start + text_len;
        search = copied;
    }
    out.push_str(&envelope[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_declare_prefixes_once_and_qualify_credentials_in_the_rmi_namespace() {
        let mut req = Request::new(Service::Group, "getData");
        req.context("ctx", 42)
            .object("grp", &super::super::types::Group::with_name("beamer & co"))
            .auth(&Credentials::new("oxadmin-context42", "pw<42>"));
        let body = req.finish();
        assert!(body.contains("<tns:getData><tns:ctx><do:id>42</do:id></tns:ctx>"));
        assert!(body.contains("<do:name>beamer &amp; co</do:name>"));
        assert!(body.contains(
            "<tns:auth><cred:login>oxadmin-context42</cred:login><cred:password>pw&lt;42&gt;</cred:password></tns:auth>"
        ));
    }

    #[test]
    fn passwords_are_redacted_in_logged_envelopes() {
        let env = "<a><cred:password>secret</cred:password><do:passwordMech>{SHA}</do:passwordMech><do:transportPassword>x</do:transportPassword><password/></a>";
        let redacted = redact_passwords(env);
        assert_eq!(
            redacted,
            "<a><cred:password>***</cred:password><do:passwordMech>{SHA}</do:passwordMech><do:transportPassword>***</do:transportPassword><password/></a>"
        );
    }

    #[test]
    fn a_fault_is_an_error_even_with_http_200() {
        let body = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Server</faultcode><faultstring>No such group; exceptionId 1-2</faultstring><detail><NoSuchGroupException xmlns="http://soap.admin.openexchange.com"/></detail></s:Fault></s:Body></s:Envelope>"#;
        let err = read_response("op", Service::Group, "getData", 200, body, false).unwrap_err();
        assert_eq!(err.kind(), OxErrorKind::Fault(FaultKind::NoSuchGroup));
        assert_eq!(err.fault_text(), Some("No such group"));
    }

    #[test]
    fn html_error_pages_are_http_or_not_soap_errors() {
        let html = b"<html><body>Bad Gateway</body></html>";
        let err = read_response("op", Service::User, "create", 502, html, false).unwrap_err();
        assert_eq!(err.kind(), OxErrorKind::Http(502));
        let err = read_response("op", Service::User, "create", 200, html, false).unwrap_err();
        assert_eq!(err.kind(), OxErrorKind::NotSoap);
    }

    /// `xs:string` fields of the WSDL complex type `name`.
    fn string_fields(wsdl: &str, name: &str) -> Vec<String> {
        let start = wsdl
            .find(&format!("<xsd:complexType name=\"{name}\">"))
            .unwrap();
        let end = start + wsdl[start..].find("</xsd:complexType>").unwrap();
        wsdl[start..end]
            .lines()
            .filter(|l| l.contains("type=\"xsd:string\""))
            .map(|l| {
                let i = l.find("name=\"").unwrap() + 6;
                l[i..i + l[i..].find('"').unwrap()].to_string()
            })
            .collect()
    }

    /// Writes `object` with `field` set to a value with U+0001 (a string, else a one-element
    /// array) and returns the request.
    fn request_with<T: SoapObject + serde::de::DeserializeOwned>(
        service: Service,
        op: &'static str,
        child: &str,
        field: &str,
    ) -> Request {
        let bad = "a\u{1}b\u{FFFF}c";
        let object: T = serde_json::from_value(serde_json::json!({ field: bad }))
            .or_else(|_| serde_json::from_value(serde_json::json!({ field: [bad] })))
            .unwrap_or_else(|e| panic!("{field}: {e}"));
        let mut request = Request::new(service, op);
        request.object(child, &object);
        request
    }

    #[test]
    fn no_string_field_of_any_object_kind_sends_a_character_xml_forbids() {
        use super::super::types::{AccountDataOnCreate, Context, Group, Resource, User};
        use super::super::xml_chars::may_drop_illegal;
        let user_wsdl = include_str!("../../emulator/wsdl/OXUserService.wsdl");
        let account_wsdl = include_str!("../../emulator/wsdl/OXSecondaryAccountService.wsdl");
        type Build = fn(&str) -> Request;
        let kinds: [(&str, &str, Build); 5] = [
            (user_wsdl, "User", |f| {
                request_with::<User>(Service::User, "change", "usrdata", f)
            }),
            (user_wsdl, "Context", |f| {
                request_with::<Context>(Service::Context, "change", "ctx", f)
            }),
            (user_wsdl, "Group", |f| {
                request_with::<Group>(Service::Group, "change", "grp", f)
            }),
            (user_wsdl, "Resource", |f| {
                request_with::<Resource>(Service::Resource, "change", "res", f)
            }),
            (account_wsdl, "AccountDataOnCreate", |f| {
                request_with::<AccountDataOnCreate>(
                    Service::SecondaryAccount,
                    "create",
                    "accountDataOnCreate",
                    f,
                )
            }),
        ];
        let mut checked = 0;
        for (wsdl, kind, build) in kinds {
            for field in string_fields(wsdl, kind) {
                let request = build(&field);
                let (dropped, refused) = (
                    request.dropped_fields().to_vec(),
                    request.refused_field().map(str::to_string),
                );
                let body = request.finish();
                xml::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{kind}.{field}: {e}"));
                if may_drop_illegal(&field) {
                    assert_eq!(refused, None, "{kind}.{field}");
                    assert!(
                        dropped.iter().any(|d| d.ends_with(&format!("/{field}"))),
                        "{kind}.{field}"
                    );
                    assert!(body.contains(">abc<"), "{kind}.{field}: {body}");
                } else {
                    assert!(
                        refused.is_some_and(|r| r.ends_with(&format!("/{field}"))),
                        "{kind}.{field}"
                    );
                }
                checked += 1;
            }
        }
        assert!(checked > 140, "{checked} fields");
        // Credentials and user attributes refuse too.
        let mut request = Request::new(Service::User, "getData");
        request.auth(&Credentials::new("oxadmin\u{1}", "pw"));
        assert_eq!(request.refused_field(), Some("getData/auth/login"));
        let mut attributes = super::super::types::StringMapMap::default();
        attributes.set("config", "key", "v\u{2}");
        let user = super::super::types::User {
            user_attributes: Some(attributes),
            ..Default::default()
        };
        let mut request = Request::new(Service::User, "change");
        request.object("usrdata", &user);
        assert!(request.refused_field().is_some());
    }
}
