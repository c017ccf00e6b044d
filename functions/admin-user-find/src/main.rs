use lambda_http::{run, service_fn, Error};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let state = admin_user_find::State::from_env()
        .await
        .inspect_err(|e| tracing::error!(error = %e, "configuration error, not starting"))?;
    let state = &state;
    run(service_fn(move |req| async move {
        Ok::<_, Error>(admin_user_find::handler(state, req).await)
    }))
    .await
}
