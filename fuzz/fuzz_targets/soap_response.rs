//! Fuzzes the SOAP response parser: the XML reader, the envelope and fault handling, and the
//! decoding of a returned `User`. Any bytes must give a result or an error, never a panic, and
//! never more memory than the parser's limits allow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ox_connector::ox::soap::envelope::{read_response, Service};
use ox_connector::ox::soap::types::SoapObject;
use ox_connector::ox::soap::User;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let void = flags & 1 == 1;
    let status = if flags & 2 == 2 { 500 } else { 200 };
    if let Ok(Some(wrapper)) =
        read_response("OXUserService.getData", Service::User, "getData", status, body, void)
    {
        for child in &wrapper.children {
            let _ = User::decode(child, false);
            let _ = User::decode(child, true);
        }
    }
});
