//! Operators' roles, least privilege first, and what each may touch.
//! Everyone signed in may read (and run `verify`); beyond that a role
//! opens one area (and deciding the approvals of that area), and `admin`
//! every area.

/// An operator's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Everything read-only, and `verify`.
    Viewer,
    /// Users and their limits; money read-only.
    Support,
    /// Rounds (open, lock, settle, void) and prices.
    Operator,
    /// Withdrawals, deposits by hand, sweeps.
    Treasurer,
    /// Operators and settings, and every other area.
    Admin,
}

/// What a route or command touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Area {
    /// Reading anything.
    Read,
    Users,
    Rounds,
    Money,
    /// Deciding two-person approvals: those of rounds and of money (each
    /// approval is then decided only by its own area's roles).
    Approvals,
    Operators,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Support,
        Role::Operator,
        Role::Treasurer,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Support => "support",
            Role::Operator => "operator",
            Role::Treasurer => "treasurer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn allows(self, area: Area) -> bool {
        match area {
            Area::Read => true,
            Area::Users => matches!(self, Role::Support | Role::Admin),
            Area::Rounds => matches!(self, Role::Operator | Role::Admin),
            Area::Money => matches!(self, Role::Treasurer | Role::Admin),
            Area::Approvals => matches!(self, Role::Operator | Role::Treasurer | Role::Admin),
            Area::Operators => self == Role::Admin,
        }
    }
}

impl Area {
    pub const ALL: [Area; 6] = [
        Area::Read,
        Area::Users,
        Area::Rounds,
        Area::Money,
        Area::Approvals,
        Area::Operators,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Area::Read => "read",
            Area::Users => "users",
            Area::Rounds => "rounds",
            Area::Money => "money",
            Area::Approvals => "approvals",
            Area::Operators => "operators",
        }
    }

    /// The roles that may touch this area, least privilege first.
    pub fn roles(self) -> Vec<Role> {
        Role::ALL.into_iter().filter(|r| r.allows(self)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_opens_its_own_area_and_admin_all() {
        assert_eq!(Area::Read.roles(), Role::ALL.to_vec());
        assert_eq!(Area::Users.roles(), [Role::Support, Role::Admin]);
        assert_eq!(Area::Rounds.roles(), [Role::Operator, Role::Admin]);
        assert_eq!(Area::Money.roles(), [Role::Treasurer, Role::Admin]);
        assert_eq!(
            Area::Approvals.roles(),
            [Role::Operator, Role::Treasurer, Role::Admin]
        );
        assert_eq!(Area::Operators.roles(), [Role::Admin]);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(Role::parse("Admin"), None);
    }
}
