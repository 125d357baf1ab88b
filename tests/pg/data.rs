//! The rows the test database is filled with: deterministic customers with Luhn-valid card
//! numbers and e-mail addresses (some also inside free-text notes), and a few accounts. Tests
//! compare what a client saw with these values.
use std::fmt::Write as _;

/// Customers generated.
pub const CUSTOMERS: usize = 300;
/// Accounts generated (ids 1..=ACCOUNTS).
pub const ACCOUNTS: usize = 20;

/// One row of `customers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// Primary key, from 1.
    pub id: u32,
    /// `Customer <id>`.
    pub name: String,
    /// `customer<id>@example.com`.
    pub email: String,
    /// 16 digits, Luhn-valid, starting with 4.
    pub card_number: String,
    /// Free text; every third row mentions another e-mail address.
    pub notes: String,
}

impl Customer {
    /// The card number as `last4` masking shows it: every digit but the last four starred.
    pub fn card_last4(&self) -> String {
        let n = self.card_number.len();
        format!("{}{}", "*".repeat(n - 4), &self.card_number[n - 4..])
    }

    /// The notes with every e-mail address redacted by the `email` detector.
    pub fn notes_redacted(&self) -> String {
        match self.notes_email() {
            Some(email) => self.notes.replace(&email, "[REDACTED:email]"),
            None => self.notes.clone(),
        }
    }

    /// The e-mail address inside the notes, if any.
    pub fn notes_email(&self) -> Option<String> {
        self.id
            .is_multiple_of(3)
            .then(|| format!("alt{}@mail.example.org", self.id))
    }
}

/// The customers, always the same.
pub fn customers() -> Vec<Customer> {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    (1..=CUSTOMERS as u32)
        .map(|id| {
            let mut digits = vec![4u8];
            for _ in 0..14 {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                digits.push(u8::try_from((seed >> 33) % 10).expect("digit"));
            }
            digits.push(luhn_check_digit(&digits));
            let card_number = digits.iter().map(|d| char::from(b'0' + d)).collect();
            let notes = if id.is_multiple_of(3) {
                format!("prefers mail to alt{id}@mail.example.org, not the main address")
            } else {
                format!("regular customer number {id}")
            };
            Customer {
                id,
                name: format!("Customer {id}"),
                email: format!("customer{id}@example.com"),
                card_number,
                notes,
            }
        })
        .collect()
}

/// The Luhn check digit to append to `digits`.
pub fn luhn_check_digit(digits: &[u8]) -> u8 {
    // Doubling starts at the rightmost digit of the payload (it becomes second from the right).
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i.is_multiple_of(2) {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    u8::try_from((10 - sum % 10) % 10).expect("digit")
}

/// Whether `number` (digits only) passes the Luhn check.
pub fn luhn_valid(number: &str) -> bool {
    let digits: Vec<u8> = number.bytes().map(|b| b - b'0').collect();
    match digits.split_last() {
        Some((&check, payload)) => luhn_check_digit(payload) == check,
        None => false,
    }
}

/// The SQL that creates and fills the tables (run as the owning role, inside `orders`).
pub fn schema_sql(customers: &[Customer]) -> String {
    let mut sql = String::from(
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, \
         card_number text NOT NULL, notes text);\n\
         CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL);\n\
         COPY customers (id, name, email, card_number, notes) FROM stdin;\n",
    );
    for c in customers {
        let _ = writeln!(
            sql,
            "{}\t{}\t{}\t{}\t{}",
            c.id, c.name, c.email, c.card_number, c.notes
        );
    }
    sql.push_str("\\.\n");
    let _ = writeln!(
        sql,
        "INSERT INTO accounts SELECT i, 'owner ' || i, i * 1000 FROM generate_series(1, {ACCOUNTS}) i;"
    );
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_numbers() {
        let cases = [
            ("4111111111111111", true),
            ("4111111111111112", false),
            ("79927398713", true),
            ("79927398710", false),
        ];
        for (number, want) in cases {
            assert_eq!(luhn_valid(number), want, "{number}");
        }
    }
}
