//! What serde cannot check: ranges, and how the fields of one section relate.
//! Each section checks itself; what spans sections (events and faults within
//! the run's duration, the hosts a fault names) is checked where the run is
//! planned (`plan.rs`).

use super::{
    Events, LongPolling, MAX_CLIENT_HOSTS, MAX_CLIENTS, MAX_DURATION, MAX_PAYLOAD_BYTES, Network,
    Proxy, Scenario, ScenarioError, ShortPolling, Span, Sse, Workload, err,
};

/// A span that must be at least 1 ms.
fn at_least_1ms(field: &str, span: Span) -> Result<(), ScenarioError> {
    if span < Span::from_millis(1) {
        return Err(err(field, "must be at least 1ms"));
    }
    Ok(())
}

/// `initial` and `max` of an exponential backoff.
fn backoff(section: &str, initial: Span, max: Span) -> Result<(), ScenarioError> {
    if initial < Span::from_millis(1) || max < initial {
        return Err(err(
            format!("{section}.backoff_initial"),
            format!("must be at least 1ms and at most {section}.backoff_max"),
        ));
    }
    Ok(())
}

impl Scenario {
    /// Checks every section. Values that cannot mean anything are errors;
    /// a misconfiguration a real deployment could have is run, with a
    /// one-line warning naming its consequence.
    pub(super) fn check_sections(&self, warnings: &mut Vec<String>) -> Result<(), ScenarioError> {
        if self.duration == Span::ZERO || self.duration > MAX_DURATION {
            return Err(err("duration", "must be more than 0 and at most 24h"));
        }
        if self.drain > MAX_DURATION {
            return Err(err("drain", "must be at most 24h"));
        }
        self.network.check(warnings)?;
        self.workload.check()?;
        self.short_polling.check()?;
        self.long_polling.check(warnings)?;
        self.sse.check(warnings)?;
        self.websocket.check(warnings)?;
        self.webhooks.check()?;
        self.receiver.check()?;
        at_least_1ms("jobs.poll_interval", self.jobs.poll_interval)?;
        at_least_1ms("jobs.visibility_timeout", self.jobs.visibility_timeout)?;
        self.proxy.check()
    }
}

impl Network {
    fn check(&self, warnings: &mut Vec<String>) -> Result<(), ScenarioError> {
        if !(0.0..=1.0).contains(&self.loss) || self.loss.is_nan() {
            return Err(err(
                "network.loss",
                format!(
                    "is {}, but a probability must be between 0 and 1",
                    self.loss
                ),
            ));
        }
        if self.loss >= 1.0 {
            warnings.push("network.loss = 1: every message is lost, nothing gets through".into());
        }
        if self.tick < Span::from_millis(1) || self.tick > Span::from_secs(1) {
            return Err(err("network.tick", "must be between 1ms and 1s"));
        }
        // tokio's timers count whole milliseconds: each host's clock would
        // round every 1.5ms step up to 2ms and run ahead of the network's.
        if !self.tick.0.is_multiple_of(Span::from_millis(1).0) {
            return Err(err(
                "network.tick",
                format!(
                    "is {}, but must be a whole number of milliseconds (the hosts' timers count milliseconds)",
                    self.tick
                ),
            ));
        }
        if self.latency > Span::from_secs(60) {
            return Err(err("network.latency", "must be at most 60s"));
        }
        if self.jitter > Span::from_secs(60) {
            return Err(err("network.jitter", "must be at most 60s"));
        }
        at_least_1ms(
            "network.tcp_retransmit_timeout",
            self.tcp_retransmit_timeout,
        )?;
        if self.socket_buffer_kib > 1 << 20 {
            return Err(err(
                "network.socket_buffer_kib",
                "must be at most 1048576 (1 GiB); 0 means no limit",
            ));
        }
        Ok(())
    }
}

impl Workload {
    fn check(&self) -> Result<(), ScenarioError> {
        if self.clients == 0 || self.clients > MAX_CLIENTS {
            return Err(err(
                "workload.clients",
                format!("must be between 1 and {MAX_CLIENTS}"),
            ));
        }
        if self.client_hosts > MAX_CLIENT_HOSTS || self.client_hosts > self.clients {
            return Err(err(
                "workload.client_hosts",
                format!("must be 0 (automatic) or between 1 and min(clients, {MAX_CLIENT_HOSTS})"),
            ));
        }
        if self.payload_bytes > MAX_PAYLOAD_BYTES {
            return Err(err(
                "workload.payload_bytes",
                format!("must be at most {MAX_PAYLOAD_BYTES}"),
            ));
        }
        self.events.check()
    }
}

impl Events {
    fn check(&self) -> Result<(), ScenarioError> {
        let kinds =
            self.every.is_some() as u8 + self.rate.is_some() as u8 + (!self.at.is_empty()) as u8;
        if kinds > 1 {
            return Err(err(
                "workload.events",
                "give exactly one of `every`, `rate` or `at`",
            ));
        }
        if let Some(every) = self.every {
            at_least_1ms("workload.events.every", every)?;
        }
        if let Some(rate) = self.rate
            && !(rate > 0.0 && rate <= 10_000.0)
        {
            return Err(err(
                "workload.events.rate",
                format!("is {rate}; events per second must be more than 0 and at most 10000"),
            ));
        }
        if self.count == Some(0) {
            return Err(err("workload.events.count", "must be at least 1"));
        }
        if self.count.is_some() && self.every.is_none() && self.rate.is_none() {
            return Err(err("workload.events.count", "goes with `every` or `rate`"));
        }
        Ok(())
    }
}

impl ShortPolling {
    fn check(&self) -> Result<(), ScenarioError> {
        at_least_1ms("short_polling.interval", self.interval)?;
        at_least_1ms(
            "short_polling.server_idle_timeout",
            self.server_idle_timeout,
        )?;
        at_least_1ms("short_polling.request_timeout", self.request_timeout)?;
        backoff("short_polling", self.backoff_initial, self.backoff_max)
    }
}

impl LongPolling {
    fn check(&self, warnings: &mut Vec<String>) -> Result<(), ScenarioError> {
        at_least_1ms("long_polling.hold", self.hold)?;
        if self.client_timeout <= self.hold {
            warnings.push(format!(
                "long_polling.client_timeout ({}) is not longer than long_polling.hold ({}): every quiet hold ends with the client giving up",
                self.client_timeout, self.hold
            ));
        }
        backoff("long_polling", self.backoff_initial, self.backoff_max)
    }
}

impl Sse {
    fn check(&self, warnings: &mut Vec<String>) -> Result<(), ScenarioError> {
        if self.client_default_retry == Span::ZERO {
            warnings.push("sse.client_default_retry = 0: clients reconnect at once, a tight loop against a server that is down".into());
        }
        if self.history == 0 || self.history > 1_000_000 {
            return Err(err("sse.history", "must be between 1 and 1000000 events"));
        }
        if self.retry == Some(Span::ZERO) {
            warnings.push("sse.retry = 0: the server tells clients to reconnect at once, a tight loop when it is down".into());
        }
        Ok(())
    }
}

impl super::WebSocket {
    fn check(&self, warnings: &mut Vec<String>) -> Result<(), ScenarioError> {
        use super::Reconnect;
        if self.history == 0 || self.history > 1_000_000 {
            return Err(err(
                "websocket.history",
                "must be between 1 and 1000000 messages",
            ));
        }
        if self.max_message < 125 || self.max_message > 64 << 20 {
            return Err(err(
                "websocket.max_message",
                "must be between 125 bytes and 64 MiB",
            ));
        }
        if self.max_queued == 0 {
            return Err(err("websocket.max_queued", "must be at least 1 message"));
        }
        at_least_1ms("websocket.slow_read_pause", self.slow_read_pause)?;
        if let Reconnect::Delays(delays) = &self.reconnect
            && delays.is_empty()
        {
            return Err(err(
                "websocket.reconnect",
                "an empty list: write \"off\" to never reconnect",
            ));
        }
        if let (Some(beat), Some(timeout)) = (self.heartbeat, self.heartbeat_timeout)
            && timeout <= beat
        {
            warnings.push(format!(
                "websocket.heartbeat_timeout ({timeout}) is not longer than websocket.heartbeat ({beat}): a live peer can be dropped between two heartbeats"
            ));
        }
        Ok(())
    }
}

impl super::Webhooks {
    fn check(&self) -> Result<(), ScenarioError> {
        if !(0.0..=1.0).contains(&self.jitter) || self.jitter.is_nan() {
            return Err(err(
                "webhooks.jitter",
                format!("is {}, but a fraction must be between 0 and 1", self.jitter),
            ));
        }
        at_least_1ms("webhooks.attempt_timeout", self.attempt_timeout)?;
        if self.concurrency == 0 || self.concurrency > 10_000 {
            return Err(err(
                "webhooks.concurrency",
                "must be between 1 and 10000 attempts at once",
            ));
        }
        Ok(())
    }
}

impl super::Receiver {
    fn check(&self) -> Result<(), ScenarioError> {
        if self.tolerance < Span::from_secs(1) {
            return Err(err("receiver.tolerance", "must be at least 1s"));
        }
        Ok(())
    }
}

impl Proxy {
    fn check(&self) -> Result<(), ScenarioError> {
        if self.buffer_kib == 0 || self.buffer_kib > 1024 {
            return Err(err("proxy.buffer_kib", "must be between 1 and 1024"));
        }
        Ok(())
    }
}
