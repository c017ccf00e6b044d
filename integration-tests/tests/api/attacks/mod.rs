//! An attack catalogue: one test per attack, each named after the WebAuthn Level 3 step
//! (§7.1 Registering a New Credential, §7.2 Verifying an Authentication Assertion) or the
//! RFC 8725 (JWT BCP) section it exercises. Real soft authenticators do the legitimate parts;
//! what no compliant authenticator would send is made by tampering with their output, or by
//! signing with the real private key of a `SoftToken` credential (see `forge`).

mod assertion;
pub mod forge;
mod holes;
mod jwt;
mod registration;
