//! The emulator's SOAP layer: reads a request the way OX (Apache CXF + JAXB) does and writes
//! the answer the way OX does (`<op>Response` with `ns2`…`ns5` prefixes and nil elements, an
//! empty Body for void operations, faults with `; exceptionId …` and the detail element). The
//! operations themselves are in `dispatch.rs`.
//!
//! Tolerance (`ox-soap.md` §2.1): children in any order, qualified or unqualified, `xsi:nil` =
//! absent, `xsi:type` and SOAPAction ignored, SOAP headers ignored. Rejected with
//! `soap:Client`: malformed XML, a non-SOAP-1.1 envelope, an unknown operation, and any element
//! in a foreign namespace or unknown to its type.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::ox::soap::types::{Credentials, DecodeError, IdOnly, SoapObject};
use crate::ox::soap::xml::{self, Element, Ns, Prefixes, XmlWriter};
use crate::ox::soap::Service;

use super::state::OxFault;

/// A request that could not be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum SoapError {
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
pub(super) struct ParsedRequest {
    pub wrapper: Element,
}

impl ParsedRequest {
    pub(super) fn operation(&self) -> &str {
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
pub(super) fn parse_request(service: Service, body: &[u8]) -> Result<ParsedRequest, SoapError> {
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
pub(super) struct Call<'a> {
    wrapper: &'a Element,
}

impl<'a> Call<'a> {
    pub(super) fn new(
        wrapper: &'a Element,
        ns: Ns,
        allowed: &[&str],
    ) -> Result<Call<'a>, SoapError> {
        for child in &wrapper.children {
            let ns_ok = child.ns == ns || child.ns == Ns::None;
            if !ns_ok || !allowed.contains(&child.name.as_str()) {
                return Err(DecodeError::unexpected(child).into());
            }
        }
        Ok(Call { wrapper })
    }

    /// Non-nil children named `name`.
    pub(super) fn all(&self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.wrapper
            .children
            .iter()
            .filter(move |c| c.name == name && !c.nil)
    }

    pub(super) fn obj<T: SoapObject>(&self, name: &'a str) -> Result<Option<T>, SoapError> {
        // JAXB keeps the last occurrence of a single-valued child.
        match self.all(name).last() {
            Some(el) => Ok(Some(T::decode(el, true)?)),
            None => Ok(None),
        }
    }

    pub(super) fn objs<T: SoapObject>(&self, name: &'a str) -> Result<Vec<T>, SoapError> {
        self.all(name)
            .map(|el| T::decode(el, true).map_err(SoapError::from))
            .collect()
    }

    pub(super) fn text(&self, name: &'a str) -> Option<String> {
        self.all(name).last().map(|el| el.text.clone())
    }

    pub(super) fn auth(&self) -> Result<Option<Credentials>, SoapError> {
        self.obj("auth")
    }

    pub(super) fn ids(&self, name: &'a str) -> Result<Vec<i32>, SoapError> {
        Ok(self
            .objs::<IdOnly>(name)?
            .into_iter()
            .filter_map(|o| o.id)
            .collect())
    }
}

/// What a served operation answers.
pub(super) enum Reply {
    Void,
    Objects(Box<dyn FnOnce(&mut XmlWriter)>),
    Scalar(String),
}

pub(super) fn one<T: SoapObject + 'static>(value: T) -> Reply {
    Reply::Objects(Box::new(move |w| value.write_as(w, w_ns(w), "return")))
}

pub(super) fn many<T: SoapObject + 'static>(values: Vec<T>) -> Reply {
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
pub(super) const VOID_RESPONSE: &str =
    "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body/></soap:Envelope>";

/// Writes a successful answer.
pub(super) fn write_reply(service: Service, op: &str, reply: Reply, nil_for_none: bool) -> String {
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
pub(super) fn write_fault(service: Service, error: &SoapError, exception_id: &str) -> String {
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
