//! `AlertLog`: an actor that keeps every alert a log sends it, for tests to look at.
#![allow(dead_code)]

use actix::prelude::*;
use actix_wal::Alert;
use std::sync::{Arc, Mutex};

/// Keeps every alert it is sent in the shared list.
pub struct AlertLog(pub Arc<Mutex<Vec<Alert>>>);

impl AlertLog {
    /// A started log and its list: the recipient goes to `WalConfig::alert_to`.
    pub fn start_new() -> (Recipient<Alert>, Arc<Mutex<Vec<Alert>>>) {
        let alerts = Arc::new(Mutex::new(Vec::new()));
        (AlertLog(alerts.clone()).start().recipient(), alerts)
    }
}

impl Actor for AlertLog {
    type Context = Context<Self>;
}

impl Handler<Alert> for AlertLog {
    type Result = ();
    fn handle(&mut self, a: Alert, _: &mut Self::Context) {
        self.0.lock().unwrap().push(a);
    }
}
