//! Pressure stall information from /proc/pressure/{cpu,memory,io} (Linux 4.20 and later).

use super::ParseError;
use headroom_common::wire::PressureLine;

/// The "some" line of one pressure file: "some avg10=0.00 avg60=0.17 avg300=0.59 total=41705799".
///
/// `file` names the file in errors, e.g. "pressure/cpu".
pub fn parse_pressure(text: &str, file: &'static str) -> Result<PressureLine, ParseError> {
    for (index, line) in text.lines().enumerate() {
        let Some(fields) = line.strip_prefix("some ") else {
            continue;
        };
        let line_number = index + 1;
        let mut avg10 = None;
        let mut total = None;
        for field in fields.split_whitespace() {
            let Some((key, value)) = field.split_once('=') else {
                return Err(ParseError::at(
                    file,
                    line_number,
                    format!("field \"{field}\" is not key=value"),
                ));
            };
            let bad = || ParseError::at(file, line_number, format!("{key} \"{value}\" is not a number"));
            match key {
                "avg10" => avg10 = Some(value.parse::<f32>().map_err(|_| bad())?),
                "total" => total = Some(value.parse::<u64>().map_err(|_| bad())?),
                _ => {}
            }
        }
        return match (avg10, total) {
            (Some(some_avg10), Some(some_total_us)) => Ok(PressureLine {
                some_avg10,
                some_total_us,
            }),
            _ => Err(ParseError::at(
                file,
                line_number,
                "\"some\" line lacks avg10= or total=",
            )),
        };
    }
    Err(ParseError::whole(file, "no \"some\" line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_some_line_counts() {
        let text = "full avg10=9.00 avg60=0 avg300=0 total=5\nsome avg10=1.50 avg60=0 avg300=0 total=42\n";
        let line = parse_pressure(text, "pressure/io").unwrap();
        assert_eq!(line.some_avg10, 1.5);
        assert_eq!(line.some_total_us, 42);
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let error = parse_pressure("some avg10=x total=1\n", "pressure/cpu").unwrap_err();
        assert_eq!(
            error.to_string(),
            "pressure/cpu: line 1: avg10 \"x\" is not a number"
        );
        let error = parse_pressure("full avg10=0.00 total=1\n", "pressure/irq").unwrap_err();
        assert_eq!(error.to_string(), "pressure/irq: no \"some\" line");
    }
}
