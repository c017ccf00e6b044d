//! Shared library of the passkey and MFA service: WebAuthn ceremonies (webauthn-rs), tenant
//! checks, system JWTs (jsonwebtoken, ES256 or RS256, signed in KMS or with a PEM key) and DynamoDB access (aws-sdk-dynamodb).

pub mod account;
pub mod admin;
pub mod admin_http;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod codes;
pub mod config;
pub mod crypto;
pub mod device;
pub mod error;
pub mod http;
pub mod ids;
pub mod jwt;
pub mod keys;
pub mod mfa;
pub mod passwordless;
pub mod policy;
pub mod secrets;
pub mod session;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tenant;
pub mod webauthn;

pub use error::ApiError;
