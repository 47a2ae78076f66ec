//! The OX admin SOAP client (⑤): typed data objects, one method per OX operation the
//! connector needs, and errors callers can branch on.
//!
//! # Use
//! ```no_run
//! # async fn demo() -> Result<(), ox_connector::ox::soap::OxError> {
//! use std::time::Duration;
//! use ox_connector::ox::soap::{Credentials, OxClient, User};
//!
//! let ox = OxClient::builder("https://ox.example.org") // OX_SOAP_SERVER
//!     .timeout(Duration::from_secs(30))
//!     .master(Credentials::new("oxadminmaster", "secret"))
//!     .build()?;
//! let admin = Credentials::new("oxadmin-context10", "ctx-secret");
//! if !ox.user_exists(10, &User::with_name("jdoe"), &admin).await? {
//!     // create …
//! }
//! let user = ox.get_user(10, &User::with_name("jdoe"), &admin).await?;
//! # let _ = user; Ok(()) }
//! ```
//!
//! Context operations and `copy_user` use the master credentials given to the builder; all
//! other calls take the context admin's [`Credentials`] and the context id.
//!
//! # Errors
//! [`OxError::kind`] is [`OxErrorKind`]: `Connect`, `Timeout`, `Transport`, `Http(status)`,
//! `NotSoap`, `Decode`, `Fault(FaultKind)`, `Config`, `InvalidValue` (a value with a character
//! XML 1.0 forbids, never sent; see [`xml_chars`]). [`OxError::is_retryable`] says whether a
//! bounded retry can help; [`OxError::is_not_found`] / [`OxError::is_conflict`] /
//! [`OxError::is_auth`] classify faults by detail element and text (`ox-soap.md` §8.2);
//! [`OxError::fault_text`] is the fault string without `; exceptionId …`.
//!
//! # Wire format
//! Requests are written like `../shared/ox-soap/examples/*.req.xml`: SOAP 1.1, wrapper and its
//! children in the service namespace, data-object fields in `do:`, credentials in `cred:`, schema
//! order, only set fields, every text escaped. Answers are parsed by namespace URI; unknown
//! elements are ignored and `xsi:nil` means absent. Secrets never reach logs: `Credentials` and
//! every data object redact passwords in `Debug`, and the optional envelope debug log
//! ([`OxClientBuilder::log_envelopes`]) masks every `…password` element.

mod answer;
mod client;
mod context_service;
pub mod envelope;
mod error;
mod group_service;
pub mod mail_address;
mod resource_service;
mod secondary_account_service;
pub mod transport;
pub mod types;
mod user_service;
pub mod xml;
pub mod xml_chars;

pub use client::{normalize_server_url, OxClient, OxClientBuilder, DEFAULT_TIMEOUT};
pub use envelope::Service;
pub use error::{Fault, FaultKind, OxError, OxErrorKind};
pub use transport::{Answered, HttpTransport, Post, Transport, TransportError, TransportErrorKind};
pub use types::{
    Account, AccountDataOnCreate, Context, Credentials, Database, Group, IdOnly, Resource,
    SchemaSelectStrategy, StringMap, StringMapMap, User, UserModuleAccess,
};
