//! End-to-end tests of every function against a real DynamoDB-compatible server and real
//! WebAuthn ceremonies. One test binary, so one moto server, shared by all tests.

mod account;
mod admin;
mod attacks;
mod audit;
mod cfn;
mod cli;
mod contract;
mod discovery;
mod erasure;
mod events;
mod faults;
mod first_enrollment;
mod garbage;
mod harness;
mod iam;
mod kms;
mod lifecycle;
mod mfa;
mod passwordless;
mod policies;
mod registration;
mod round_trips;
mod single_use;
mod template;
mod tokens;
mod usernameless;
