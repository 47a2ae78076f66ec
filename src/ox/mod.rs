//! ⑤ Talking to OX App Suite: the admin SOAP client lives in [`soap`].

pub mod soap;
