//! What an OX operation answers and how it is read from the `<op>Response` wrapper: nothing
//! (void), a boolean, one data object or a list of them. Decoding is lenient (unknown elements
//! ignored, nil = absent); this module does not send anything.

use super::envelope::returns;
use super::error::{OxError, OxErrorKind};
use super::types::{DecodeError, SoapObject};
use super::xml::Element;

/// The result type of an operation, decoded from its answer.
pub(crate) trait Answer: Sized {
    /// Void operations answer with an empty Body, so there is no wrapper to read.
    const VOID: bool = false;

    /// Reads the answer; `wrapper` is `None` exactly for void operations.
    fn decode(operation: &str, wrapper: Option<Element>) -> Result<Self, OxError>;
}

/// Void operations.
impl Answer for () {
    const VOID: bool = true;

    fn decode(_operation: &str, _wrapper: Option<Element>) -> Result<(), OxError> {
        Ok(())
    }
}

/// The `return` boolean.
impl Answer for bool {
    fn decode(operation: &str, wrapper: Option<Element>) -> Result<bool, OxError> {
        let el = present(operation, &wrapper)?;
        let text = returns(el).next().map(|r| r.text.trim()).unwrap_or("");
        match text {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(OxError::new(
                OxErrorKind::Decode,
                operation,
                format!("{other:?} is not a boolean"),
            )),
        }
    }
}

/// The single `return` object.
impl<T: SoapObject> Answer for T {
    fn decode(operation: &str, wrapper: Option<Element>) -> Result<T, OxError> {
        let el = present(operation, &wrapper)?;
        let first = returns(el)
            .next()
            .ok_or_else(|| OxError::new(OxErrorKind::Decode, operation, "no return element"))?;
        <T as SoapObject>::decode(first, false).map_err(|e| decode_error(operation, e))
    }
}

/// All `return` objects.
impl<T: SoapObject> Answer for Vec<T> {
    fn decode(operation: &str, wrapper: Option<Element>) -> Result<Vec<T>, OxError> {
        let el = present(operation, &wrapper)?;
        returns(el)
            .map(|r| <T as SoapObject>::decode(r, false).map_err(|e| decode_error(operation, e)))
            .collect()
    }
}

fn decode_error(operation: &str, e: DecodeError) -> OxError {
    OxError::new(OxErrorKind::Decode, operation, e.to_string()).with_boxed_source(Some(Box::new(e)))
}

fn present<'a>(operation: &str, wrapper: &'a Option<Element>) -> Result<&'a Element, OxError> {
    wrapper
        .as_ref()
        .ok_or_else(|| OxError::new(OxErrorKind::Decode, operation, "no response element"))
}
