//! Shared library of the passkey and MFA service: WebAuthn ceremonies (webauthn-rs), tenant
//! checks, system JWTs (jsonwebtoken, ES256) and DynamoDB access (aws-sdk-dynamodb).

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
pub mod mfa;
pub mod passwordless;
pub mod session;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tenant;
pub mod webauthn;

pub use error::ApiError;
