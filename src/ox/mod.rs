//! OX SOAP client (issue 4 fills this in).
