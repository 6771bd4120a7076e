//! Splitting `+919876543210` into `+91` and `9876543210`: country calling codes are
//! prefix-free, so the first match in the table below (one, two or three digits) is the code.

/// Country calling codes of one and two digits; every other code has three.
const SHORT_CODES: &[&str] = &[
    "1", "7", "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45",
    "46", "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
    "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
];

/// `(area_code, national_number)` of a phone given as `+CCNNNN…`, `+CC-NNNN…` or `+CC NNNN…`;
/// a number without `+` is taken as Indian (`+91`).
pub fn split(phone: &str) -> Result<(String, String), String> {
    let p = phone.trim();
    if let Some((cc, rest)) = p.split_once([' ', '-']) {
        if cc.starts_with('+') {
            let number: String = rest.chars().filter(|c| c.is_ascii_digit()).collect();
            return check(cc.to_owned(), number);
        }
    }
    let digits: String = p.chars().filter(|c| c.is_ascii_digit()).collect();
    if !p.starts_with('+') {
        return check("+91".into(), digits);
    }
    for len in 1..=3 {
        if digits.len() <= len {
            break;
        }
        let code = &digits[..len];
        if len == 3 || SHORT_CODES.contains(&code) {
            return check(format!("+{code}"), digits[len..].to_owned());
        }
    }
    Err(format!(
        "{phone} is not a phone number with a country code, like +919876543210"
    ))
}

fn check(area: String, number: String) -> Result<(String, String), String> {
    if number.len() < 4 || number.len() > 14 {
        return Err(format!(
            "{area} {number}: the number must have 4 to 14 digits"
        ));
    }
    Ok((area, number))
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn country_codes_of_every_length_are_split() {
        assert_eq!(
            split("+919876543210"),
            Ok(("+91".into(), "9876543210".into()))
        );
        assert_eq!(
            split("+14155550123"),
            Ok(("+1".into(), "4155550123".into()))
        );
        assert_eq!(
            split("+9715012345678"),
            Ok(("+971".into(), "5012345678".into()))
        );
        assert_eq!(
            split("+44 20 7946 0018"),
            Ok(("+44".into(), "2079460018".into()))
        );
        assert_eq!(split("9876543210"), Ok(("+91".into(), "9876543210".into())));
        assert!(split("+91").is_err());
        assert!(split("hello").is_err());
    }
}
