//! Access notifications over SMTP (lettre), besides the outbox files the API layer writes.

use crate::config::SmtpConfig;
use anyhow::Context;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use outcrop_service::Mailer;

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    envelope: Envelope,
    runtime: tokio::runtime::Handle,
}

impl SmtpMailer {
    pub fn new(config: &SmtpConfig) -> anyhow::Result<Self> {
        let from: Address = config
            .from
            .parse()
            .context("[smtp] from is not an e-mail address")?;
        let to: Address = config
            .to
            .parse()
            .context("[smtp] to is not an e-mail address")?;
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host).port(config.port);
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
            envelope: Envelope::new(Some(from), vec![to]).context("[smtp] envelope")?,
            runtime: tokio::runtime::Handle::current(),
        })
    }
}

impl Mailer for SmtpMailer {
    fn send(&self, message: Vec<u8>) {
        let (transport, envelope) = (self.transport.clone(), self.envelope.clone());
        self.runtime.spawn(async move {
            match transport.send_raw(&envelope, &message).await {
                Ok(_) => tracing::info!("access notification sent over SMTP"),
                Err(e) => {
                    tracing::warn!(error = %e, "could not send the access notification over SMTP")
                }
            }
        });
    }
}
