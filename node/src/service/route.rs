//! `route`: subscription routing (stage-spec §9.1).

use super::{Outbox, Request, Service};

#[derive(Default)]
pub struct Route {}

impl Service for Route {
    fn handle(&mut self, out: &Outbox, req: Request) {
        log::info!("stage {}: '{}'", out.name(), req.key);
    }
}
