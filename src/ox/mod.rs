//! ⑤ Talking to OX App Suite: the admin SOAP client lives in [`soap`]; how many calls may be
//! in flight at once, adapting to OX's latency and faults, in [`limit`].

pub mod limit;
pub mod soap;
