//! Fuzzes the listener file parser: any bytes must give a file or an error naming the file,
//! never a panic, and a parsed file must turn into a provisioning message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ox_connector::listener::ListenerFile;
use ox_connector::message::ProvisioningMessage;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("/fuzz/2025-01-01-00-00-00-000001.json");
    match ListenerFile::parse(path, "2025-01-01-00-00-00-000001.json".into(), data.to_vec()) {
        Ok(file) => {
            let message = ProvisioningMessage::from_listener_file(&file);
            let _ = serde_json::to_vec(&message);
        }
        Err(e) => assert!(e.to_string().starts_with("/fuzz/2025-01-01-00-00-00-000001.json: ")),
    }
});
