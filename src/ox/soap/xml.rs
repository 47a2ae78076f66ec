//! The XML layer shared by the SOAP client and the emulator: a namespace-resolved element tree
//! parsed with quick-xml's `NsReader`, and a small writer that escapes every text value with
//! quick-xml's escaper.
//!
//! A tree (rather than streaming decode) is what lets both sides follow OX's tolerance rules:
//! children may come in any order, qualified or unqualified, and are matched by namespace URI
//! and local name, never by prefix.

use std::fmt::Write as _;

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{QName, ResolveResult};
use quick_xml::NsReader;

use super::xml_chars::{first_illegal, illegal_char_message, is_xml_char, Guard};

/// Namespace URIs of the OX admin SOAP API (`ox-soap.md` §2).
pub mod uri {
    /// SOAP 1.1 envelope.
    pub const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
    /// SOAP 1.2 envelope (not served by OX; recognised only to reject it properly).
    pub const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
    /// Request/response wrappers of all services except OXUserCopyService.
    pub const TNS: &str = "http://soap.admin.openexchange.com";
    /// Wrappers of OXUserCopyService.
    pub const COPY: &str = "http://soap.copy.user.admin.openexchange.com";
    /// Fields of Context, User, Group, Resource, UserModuleAccess, …
    pub const DO: &str = "http://dataobjects.soap.admin.openexchange.com/xsd";
    /// Fields of Credentials and Quota.
    pub const CRED: &str = "http://dataobjects.rmi.admin.openexchange.com/xsd";
    /// Exception types (fault detail content).
    pub const EXC: &str = "http://exceptions.rmi.admin.openexchange.com/xsd";
    /// `java.rmi.RemoteException`.
    pub const RMI: &str = "http://rmi.java/xsd";
    /// `java.io.IOException`.
    pub const IO: &str = "http://io.java/xsd";
    /// XML Schema instance (`xsi:nil`, `xsi:type`).
    pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
    /// XML Schema (built-in types named by `xsi:type`).
    pub const XSD: &str = "http://www.w3.org/2001/XMLSchema";
}

/// A namespace, classified once at parse time so matching is a cheap enum comparison.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Ns {
    /// No namespace (an unqualified element).
    #[default]
    None,
    Soap,
    Soap12,
    Tns,
    Copy,
    Do,
    Cred,
    Exc,
    Rmi,
    Io,
    Xsi,
    Xsd,
    /// Any other URI; the element keeps the URI text.
    Other,
}

impl Ns {
    fn classify(uri_bytes: &[u8]) -> Ns {
        match uri_bytes {
            b"" => Ns::None,
            b if b == uri::SOAP.as_bytes() => Ns::Soap,
            b if b == uri::SOAP12.as_bytes() => Ns::Soap12,
            b if b == uri::TNS.as_bytes() => Ns::Tns,
            b if b == uri::COPY.as_bytes() => Ns::Copy,
            b if b == uri::DO.as_bytes() => Ns::Do,
            b if b == uri::CRED.as_bytes() => Ns::Cred,
            b if b == uri::EXC.as_bytes() => Ns::Exc,
            b if b == uri::RMI.as_bytes() => Ns::Rmi,
            b if b == uri::IO.as_bytes() => Ns::Io,
            b if b == uri::XSI.as_bytes() => Ns::Xsi,
            b if b == uri::XSD.as_bytes() => Ns::Xsd,
            _ => Ns::Other,
        }
    }

    /// The URI of a known namespace (`""` for [`Ns::None`] and [`Ns::Other`]).
    pub fn uri(self) -> &'static str {
        match self {
            Ns::None | Ns::Other => "",
            Ns::Soap => uri::SOAP,
            Ns::Soap12 => uri::SOAP12,
            Ns::Tns => uri::TNS,
            Ns::Copy => uri::COPY,
            Ns::Do => uri::DO,
            Ns::Cred => uri::CRED,
            Ns::Exc => uri::EXC,
            Ns::Rmi => uri::RMI,
            Ns::Io => uri::IO,
            Ns::Xsi => uri::XSI,
            Ns::Xsd => uri::XSD,
        }
    }
}

/// One parsed element: resolved name, `xsi` attributes, text and child elements.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Element {
    pub ns: Ns,
    /// The URI when `ns` is [`Ns::Other`].
    pub other_uri: Option<Box<str>>,
    pub name: String,
    /// `xsi:nil="true"` (or `1`) was set.
    pub nil: bool,
    /// `xsi:type`, resolved against the namespaces in scope: (namespace, local name).
    pub xsi_type: Option<(Ns, String)>,
    /// Character data of the element (entity and character references resolved, CDATA
    /// included). Whitespace between child elements is dropped.
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The namespace URI as written in the document (`""` when unqualified).
    pub fn uri(&self) -> &str {
        match &self.other_uri {
            Some(u) => u,
            None => self.ns.uri(),
        }
    }

    /// Whether this is `{ns}name`.
    pub fn is(&self, ns: Ns, name: &str) -> bool {
        self.ns == ns && self.name == name
    }
}

/// Why a document could not be read as XML.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("document is not UTF-8")]
    NotUtf8,
    /// A character XML 1.0 forbids, in the text or by reference (Woodstox's wording).
    #[error("{0}")]
    IllegalChar(String),
    /// quick-xml could not read the document (the error is the source).
    #[error("{0}")]
    Syntax(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("document has no root element")]
    Empty,
    /// Text or CDATA before or after the root element.
    #[error("{0} outside the root element")]
    OutsideRoot(String),
    #[error("a document type declaration is not allowed")]
    DocType,
    #[error("unknown entity reference &{0};")]
    UnknownEntity(String),
    #[error("unbound namespace prefix {0:?}")]
    UnboundPrefix(String),
    #[error("content after the root element")]
    TrailingContent,
    #[error("elements nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("more than {MAX_ELEMENTS} elements")]
    TooManyElements,
}

/// Deepest element nesting [`parse`] accepts. OX answers are about ten levels deep; the limit
/// keeps a hostile document from making the parser build an arbitrarily deep tree.
pub const MAX_DEPTH: usize = 64;
/// Most elements [`parse`] accepts in one document (a user's data is about 150 elements); the
/// limit bounds the memory a hostile document can make the tree take.
pub const MAX_ELEMENTS: usize = 200_000;

/// Parses a whole document into its root element. A document type declaration (and with it
/// any entity definition, "billion laughs") is refused, as are documents nested deeper than
/// [`MAX_DEPTH`] or with more than [`MAX_ELEMENTS`] elements.
pub fn parse(bytes: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(bytes).map_err(|_| XmlError::NotUtf8)?;
    if let Some((c, row, col)) = first_illegal(text) {
        return Err(XmlError::IllegalChar(illegal_char_message(c, row, col)));
    }
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    loop {
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|e| XmlError::Syntax(e.into()))?;
        let namespace = match &event {
            Event::Start(_) | Event::Empty(_) => namespace_of(resolved)?,
            _ => (Ns::None, None),
        };
        if let Event::Start(_) | Event::Empty(_) = &event {
            elements += 1;
            if elements > MAX_ELEMENTS {
                return Err(XmlError::TooManyElements);
            }
            if stack.len() >= MAX_DEPTH {
                return Err(XmlError::TooDeep);
            }
        }
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(XmlError::TrailingContent);
            }
            Event::Start(start) => {
                let element = open_element(&reader, namespace, &start)?;
                stack.push(element);
            }
            Event::Empty(start) => {
                let element = open_element(&reader, namespace, &start)?;
                close_element(&mut stack, &mut root, element);
            }
            Event::End(_) => {
                // quick-xml checks that end names match, so the stack is never empty here.
                if let Some(element) = stack.pop() {
                    close_element(&mut stack, &mut root, element);
                }
            }
            Event::Text(t) => {
                let content = t.xml_content().map_err(|e| XmlError::Syntax(e.into()))?;
                push_text(&mut stack, &content, "text")?;
            }
            Event::CData(c) => {
                let content = c.xml_content().map_err(|e| XmlError::Syntax(e.into()))?;
                push_text(&mut stack, &content, "CDATA")?;
            }
            Event::GeneralRef(r) => {
                let mut tmp = [0u8; 4];
                let piece = resolve_reference(&r, &mut tmp)?;
                push_text(&mut stack, piece, "reference")?;
            }
            Event::DocType(_) => return Err(XmlError::DocType),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    root.ok_or(XmlError::Empty)
}

/// Appends text to the open element; outside the root only whitespace is allowed.
fn push_text(stack: &mut [Element], content: &str, what: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(top) => top.text.push_str(content),
        None if what == "text" && content.trim().is_empty() => {}
        None => return Err(XmlError::OutsideRoot(what.to_owned())),
    }
    Ok(())
}

/// The text of a character or predefined entity reference; a character XML 1.0 forbids is
/// refused like a raw one.
fn resolve_reference<'b>(
    r: &'b quick_xml::events::BytesRef<'_>,
    tmp: &'b mut [u8; 4],
) -> Result<&'b str, XmlError> {
    let resolved_char = r
        .resolve_char_ref()
        .map_err(|e| XmlError::Syntax(e.into()))?;
    match resolved_char {
        Some(c) if !is_xml_char(c) => Err(XmlError::IllegalChar(format!(
            "Illegal character entity: expansion character (code 0x{:x})",
            u32::from(c)
        ))),
        Some(c) => Ok(c.encode_utf8(tmp)),
        None => {
            let name = r.decode().map_err(|e| XmlError::Syntax(e.into()))?;
            resolve_predefined_entity(&name)
                .ok_or_else(|| XmlError::UnknownEntity(name.into_owned()))
        }
    }
}

fn close_element(stack: &mut [Element], root: &mut Option<Element>, mut element: Element) {
    if !element.children.is_empty() {
        // Indentation between child elements is not content.
        if element.text.trim().is_empty() {
            element.text.clear();
        }
    }
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

fn open_element(
    reader: &NsReader<&[u8]>,
    (ns, other_uri): (Ns, Option<Box<str>>),
    start: &BytesStart<'_>,
) -> Result<Element, XmlError> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut element = Element {
        ns,
        other_uri,
        name,
        ..Element::default()
    };
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError::Syntax(e.into()))?;
        let (attr_ns, local) = reader.resolver().resolve_attribute(attr.key);
        let is_xsi =
            matches!(&attr_ns, ResolveResult::Bound(n) if n.as_ref() == uri::XSI.as_bytes());
        if let ResolveResult::Unknown(prefix) = attr_ns {
            return Err(XmlError::UnboundPrefix(
                String::from_utf8_lossy(&prefix).into_owned(),
            ));
        }
        if !is_xsi {
            continue;
        }
        let value = attr
            .unescape_value()
            .map_err(|e| XmlError::Syntax(e.into()))?;
        match local.as_ref() {
            b"nil" => element.nil = matches!(value.trim(), "true" | "1"),
            b"type" => {
                let qname = QName(value.trim().as_bytes());
                let (type_local, prefix) = qname.decompose();
                let type_ns = reader.resolver().resolve_prefix(prefix, true);
                let (type_ns, _) = namespace_of(type_ns)?;
                element.xsi_type = Some((
                    type_ns,
                    String::from_utf8_lossy(type_local.as_ref()).into_owned(),
                ));
            }
            _ => {}
        }
    }
    Ok(element)
}

fn namespace_of(resolved: ResolveResult<'_>) -> Result<(Ns, Option<Box<str>>), XmlError> {
    match resolved {
        ResolveResult::Unbound => Ok((Ns::None, None)),
        ResolveResult::Bound(n) => {
            let ns = Ns::classify(n.as_ref());
            let other = (ns == Ns::Other).then(|| {
                String::from_utf8_lossy(n.as_ref())
                    .into_owned()
                    .into_boxed_str()
            });
            Ok((ns, other))
        }
        ResolveResult::Unknown(prefix) => Err(XmlError::UnboundPrefix(
            String::from_utf8_lossy(&prefix).into_owned(),
        )),
    }
}

/// Which prefix each namespace gets in a written document.
#[derive(Clone, Copy, Debug)]
pub struct Prefixes {
    /// The namespace written without prefix (declared as `xmlns="…"` on the wrapper), if any.
    pub default_ns: Option<Ns>,
    pub soap: &'static str,
    pub tns: &'static str,
    pub copy: &'static str,
    pub data: &'static str,
    pub cred: &'static str,
    pub exc: &'static str,
    pub rmi: &'static str,
}

impl Prefixes {
    /// The prefixes of the example requests: `soapenv`, `tns`, `uc`, `do`, `cred`.
    pub const CLIENT: Prefixes = Prefixes {
        default_ns: None,
        soap: "soapenv",
        tns: "tns",
        copy: "uc",
        data: "do",
        cred: "cred",
        exc: "exc",
        rmi: "rmij",
    };

    /// The prefixes a CXF server writes: wrapper namespace as default, then `ns2`…`ns5`.
    pub const fn server(wrapper: Ns) -> Prefixes {
        Prefixes {
            default_ns: Some(wrapper),
            soap: "soap",
            tns: "tns",
            copy: "uc",
            data: "ns2",
            cred: "ns3",
            rmi: "ns4",
            exc: "ns5",
        }
    }

    fn prefix(&self, ns: Ns) -> &'static str {
        if self.default_ns == Some(ns) {
            return "";
        }
        match ns {
            Ns::Soap => self.soap,
            Ns::Tns => self.tns,
            Ns::Copy => self.copy,
            Ns::Do => self.data,
            Ns::Cred => self.cred,
            Ns::Exc => self.exc,
            Ns::Rmi => self.rmi,
            Ns::Xsi => "xsi",
            _ => "",
        }
    }

    /// `xmlns` declarations for the namespaces a payload may use.
    pub fn declarations(&self, namespaces: &[Ns]) -> String {
        let mut out = String::new();
        for &ns in namespaces {
            let prefix = self.prefix(ns);
            if prefix.is_empty() {
                let _ = write!(out, " xmlns=\"{}\"", ns.uri());
            } else {
                let _ = write!(out, " xmlns:{prefix}=\"{}\"", ns.uri());
            }
        }
        out
    }
}

/// Writes XML into a string; text values are always escaped.
pub struct XmlWriter {
    buf: String,
    prefixes: Prefixes,
    /// Set for requests of the client: keeps characters XML 1.0 forbids out of the document.
    guard: Option<Guard>,
    /// Write `<x xsi:nil="true"/>` for unset nillable fields, as the OX server does.
    pub nil_for_none: bool,
}

impl XmlWriter {
    pub fn new(prefixes: Prefixes, nil_for_none: bool) -> XmlWriter {
        XmlWriter {
            buf: String::with_capacity(1024),
            prefixes,
            guard: None,
            nil_for_none,
        }
    }

    /// A writer that never writes a character XML 1.0 forbids: it drops them from descriptive
    /// fields and notes the first other field that has one ([`XmlWriter::guard`]).
    pub fn guarded(prefixes: Prefixes, nil_for_none: bool) -> XmlWriter {
        XmlWriter {
            guard: Some(Guard::default()),
            ..XmlWriter::new(prefixes, nil_for_none)
        }
    }

    /// What the guard noted (guarded writers only).
    pub fn guard(&self) -> Option<&Guard> {
        self.guard.as_ref()
    }

    fn name(&mut self, ns: Ns, local: &str) {
        let prefix = self.prefixes.prefix(ns);
        if !prefix.is_empty() {
            self.buf.push_str(prefix);
            self.buf.push(':');
        }
        self.buf.push_str(local);
    }

    /// `<p:local` + `extra` (raw attributes, already escaped) + `>`.
    pub fn open_with(&mut self, ns: Ns, local: &str, extra: &str) {
        if let Some(guard) = &mut self.guard {
            guard.enter(local);
        }
        self.buf.push('<');
        self.name(ns, local);
        self.buf.push_str(extra);
        self.buf.push('>');
    }

    pub fn open(&mut self, ns: Ns, local: &str) {
        self.open_with(ns, local, "");
    }

    pub fn close(&mut self, ns: Ns, local: &str) {
        if let Some(guard) = &mut self.guard {
            guard.leave();
        }
        self.buf.push_str("</");
        self.name(ns, local);
        self.buf.push('>');
    }

    /// `<p:local>escaped text</p:local>`.
    pub fn leaf(&mut self, ns: Ns, local: &str, text: &str) {
        let text = match &mut self.guard {
            Some(guard) => guard.clean(local, text),
            None => std::borrow::Cow::Borrowed(text),
        };
        self.open(ns, local);
        self.buf.push_str(&escape(text.as_ref()));
        self.close(ns, local);
    }

    /// `<p:local xsi:nil="true"/>`.
    pub fn nil(&mut self, ns: Ns, local: &str) {
        self.buf.push('<');
        self.name(ns, local);
        self.buf.push_str(" xsi:nil=\"true\"/>");
    }

    /// Appends markup that is known to be well-formed (envelope boilerplate).
    pub fn raw(&mut self, markup: &str) {
        self.buf.push_str(markup);
    }

    pub fn prefixes(&self) -> &Prefixes {
        &self.prefixes
    }

    pub fn finish(self) -> String {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_matched_by_namespace_uri_not_by_prefix() {
        let doc = br#"<a:Envelope xmlns:a="http://schemas.xmlsoap.org/soap/envelope/"><a:Body><x:op xmlns:x="http://soap.admin.openexchange.com"><y xmlns="http://dataobjects.soap.admin.openexchange.com/xsd">1</y></x:op></a:Body></a:Envelope>"#;
        let root = parse(doc).unwrap();
        assert!(root.is(Ns::Soap, "Envelope"));
        let op = &root.children[0].children[0];
        assert!(op.is(Ns::Tns, "op"));
        assert!(op.children[0].is(Ns::Do, "y"));
        assert_eq!(op.children[0].text, "1");
    }

    #[test]
    fn references_cdata_and_xsi_attributes_are_resolved() {
        let doc = br#"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:q="http://dataobjects.soap.admin.openexchange.com/xsd"><a xsi:type="q:User">&lt;&amp;&gt;&quot;&apos;&#x263A;<![CDATA[]]]]><![CDATA[>]]></a><b xsi:nil="true"/></r>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.children[0].text, "<&>\"'\u{263A}]]>");
        assert_eq!(
            root.children[0].xsi_type,
            Some((Ns::Do, "User".to_string()))
        );
        assert!(root.children[1].nil);
    }

    #[test]
    fn malformed_documents_are_rejected() {
        for doc in [
            &b"<a><b></a>"[..],
            b"<a>",
            b"",
            b"<a/><b/>",
            b"<a>&nbsp;</a>",
            b"<p:a/>",
            b"<!DOCTYPE a><a/>",
            b"<a>\xff</a>",
        ] {
            assert!(parse(doc).is_err(), "{:?}", String::from_utf8_lossy(doc));
        }
    }

    #[test]
    fn hostile_documents_are_refused_without_expanding_them() {
        let laughs = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>"#;
        assert!(matches!(parse(laughs), Err(XmlError::DocType)));
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(matches!(parse(deep.as_bytes()), Err(XmlError::TooDeep)));
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
        let wide = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS));
        assert!(matches!(
            parse(wide.as_bytes()),
            Err(XmlError::TooManyElements)
        ));
    }

    #[test]
    fn written_text_is_escaped_and_reads_back_unchanged() {
        let mut w = XmlWriter::new(Prefixes::CLIENT, false);
        let nasty = "<&>\"' ]]> äöü \u{1F600}";
        w.raw(&format!("<r{}>", Prefixes::CLIENT.declarations(&[Ns::Do])));
        w.leaf(Ns::Do, "name", nasty);
        w.raw("</r>");
        let root = parse(w.finish().as_bytes()).unwrap();
        assert_eq!(root.children[0].text, nasty);
    }
}
