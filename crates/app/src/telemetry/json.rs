//! JSON log lines written in one pass.
//!
//! The lines have the shape of `tracing-subscriber`'s JSON format, which
//! the journal's readers expect:
//! `{"timestamp":…,"level":…,"fields":{…},"target":…,"span":{…,"name":…}}`.
//! That formatter cost about a quarter of serve's instructions per bet
//! (callgrind, BENCHMARKS.md): it checked the UTF-8 of every fragment it
//! wrote, about 200 per bet, and parsed each span's fields back from JSON
//! for every line. Here an event's fields are escaped straight into one
//! buffer, and a span's fields are kept as a ready JSON fragment.

use std::fmt::{self, Write as _};

use chrono::{SecondsFormat, Utc};
use tracing::field::{Field, Visit};
use tracing::{span, Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as JSON lines (the event formatter).
pub struct JsonLines;

/// Keeps a span's fields as `"name":value` pairs separated by commas (the
/// field formatter, whose text the registry stores with the span).
pub struct JsonSpanFields;

impl<'writer> FormatFields<'writer> for JsonSpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        fields.record(&mut Pairs::new(&mut writer));
        Ok(())
    }

    /// Fields recorded after the span was made (rare: `span.record`). A
    /// field recorded again replaces its value, as in tracing-subscriber's
    /// JSON, rather than appearing twice.
    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &span::Record<'_>,
    ) -> fmt::Result {
        let mut added = String::new();
        fields.record(&mut Pairs::new(&mut added));
        let object = |pairs: &str| {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&format!(
                "{{{pairs}}}"
            ))
            .map_err(|_| fmt::Error)
        };
        let mut merged = object(&current.fields)?;
        merged.extend(object(&added)?);
        let text = serde_json::to_string(&merged).map_err(|_| fmt::Error)?;
        current.fields = text[1..text.len() - 1].to_string();
        Ok(())
    }
}

impl<S> FormatEvent<S, JsonSpanFields> for JsonLines
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonSpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let out = &mut writer;
        out.write_str("{\"timestamp\":\"")?;
        out.write_str(&Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true))?;
        out.write_str("\",\"level\":\"")?;
        out.write_str(meta.level().as_str())?;
        out.write_str("\",\"fields\":{")?;
        event.record(&mut Pairs::new(out));
        out.write_str("},\"target\":")?;
        string(out, meta.target());
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            out.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<JsonSpanFields>>() {
                if !fields.fields.is_empty() {
                    out.write_str(&fields.fields)?;
                    out.write_char(',')?;
                }
            }
            out.write_str("\"name\":")?;
            string(out, span.name());
            out.write_char('}')?;
        }
        out.write_str("}\n")
    }
}

/// Writes `"name":value` pairs, comma-separated, into `out`. What it
/// writes into (the subscriber's line, a span's fields) is memory, which
/// cannot fail, so a write's result is not looked at.
struct Pairs<'a, W: fmt::Write> {
    out: &'a mut W,
    first: bool,
}

impl<'a, W: fmt::Write> Pairs<'a, W> {
    fn new(out: &'a mut W) -> Pairs<'a, W> {
        Pairs { out, first: true }
    }

    fn name(&mut self, field: &Field) {
        if !std::mem::take(&mut self.first) {
            let _ = self.out.write_char(',');
        }
        let name = field.name();
        string(self.out, name.strip_prefix("r#").unwrap_or(name));
        let _ = self.out.write_char(':');
    }

    /// A value written by `fmt`, as a JSON string, escaped as it is
    /// written (no copy of its own).
    fn text(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        self.name(field);
        let _ = self.out.write_char('"');
        let _ = Escaped(&mut *self.out).write_fmt(value);
        let _ = self.out.write_char('"');
    }

    /// A value as it is, for numbers and booleans.
    fn raw(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        self.name(field);
        let _ = self.out.write_fmt(value);
    }
}

/// A `fmt::Write` that escapes what it is given for a JSON string.
struct Escaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        escape(self.0, text);
        Ok(())
    }
}

impl<W: fmt::Write> Visit for Pairs<'_, W> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.raw(field, format_args!("{value:?}"));
        } else {
            self.raw(field, format_args!("null"));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field);
        string(self.out, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, format_args!("{value:?}"));
    }
}

/// `text` as a JSON string.
fn string(out: &mut impl fmt::Write, text: &str) {
    let _ = out.write_char('"');
    escape(out, text);
    let _ = out.write_char('"');
}

/// `text` escaped for a JSON string as serde_json escapes it.
fn escape(out: &mut impl fmt::Write, text: &str) {
    let mut start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let replacement = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        let _ = out.write_str(&text[start..index]);
        let _ = if replacement.is_empty() {
            write!(out, "\\u{byte:04x}")
        } else {
            out.write_str(replacement)
        };
        start = index + 1;
    }
    let _ = out.write_str(&text[start..]);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            assert!(text.ends_with('\n'), "{text}");
            text.lines()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
                .collect()
        }
    }

    /// Events of every kind of field, inside and outside spans, one of
    /// them with fields recorded after it was made.
    fn log_some() {
        let weird = "quote \" backslash \\ newline \n tab \t nul \0 bell \u{7} é ✓ \u{1f}";
        tracing::info!(target: "access", method = %"POST", route = "/bets", status = 201u16, latency_us = 812u64, request_id = %"ab12", "request");
        let span = tracing::info_span!("request", method = %"POST", path = "/bets", request_id = %weird, later = tracing::field::Empty);
        let _entered = span.enter();
        tracing::info!(event = "bet_placed", bet = %42, stake = -5i64, ok = true, ratio = 1.25f64, nan = f64::NAN, text = weird, debug = ?Some("x"));
        span.record("later", 6u64);
        span.record("later", 7u64);
        tracing::warn!(
            error = &std::io::Error::other("disk \"full\"") as &(dyn std::error::Error + 'static),
            "with {} args",
            2
        );
        let empty = tracing::info_span!("quiet");
        let _inner = empty.enter();
        tracing::error!(r#type = "raw name", "{weird}");
    }

    /// The same events through tracing-subscriber's own JSON format and
    /// through ours parse to the same values, timestamps aside.
    #[test]
    fn lines_read_as_tracing_subscribers_json_lines_do() {
        let theirs = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(theirs.clone())
            .json()
            .with_span_list(false)
            .finish();
        tracing::subscriber::with_default(subscriber, log_some);
        let ours = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(ours.clone())
            .fmt_fields(JsonSpanFields)
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, log_some);

        let ours_raw = ours.0.lock().unwrap().clone();
        let (mut theirs, mut ours) = (theirs.lines(), ours.lines());
        assert_eq!(ours.len(), 4);
        for line in &mut ours {
            let at = line["timestamp"].take();
            let at = chrono::DateTime::parse_from_rfc3339(at.as_str().unwrap()).unwrap();
            assert!((Utc::now() - at.with_timezone(&Utc)).num_seconds().abs() < 60);
        }
        for line in &mut theirs {
            line["timestamp"].take();
        }
        assert_eq!(ours, theirs);
        assert_eq!(ours[1]["span"]["request_id"], ours[1]["fields"]["text"]);
        assert_eq!(ours[2]["span"]["later"], 7);
        // Recorded twice, written once.
        let raw = String::from_utf8(ours_raw).unwrap();
        let third = raw.lines().nth(2).unwrap();
        assert_eq!(third.matches("\"later\"").count(), 1, "{third}");
        assert_eq!(ours[2]["fields"]["error"], "disk \"full\"");
        assert_eq!(ours[3]["span"], serde_json::json!({"name": "quiet"}));
        assert_eq!(ours[3]["fields"]["type"], "raw name");
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for text in [
            "",
            "plain",
            "\"\\/",
            "\u{0}\u{1}\u{1f}\u{7f}",
            "\r\n\t\u{8}\u{c}",
            "é✓😀",
        ] {
            let mut ours = String::new();
            string(&mut ours, text);
            assert_eq!(ours, serde_json::to_string(text).unwrap());
        }
    }
}
