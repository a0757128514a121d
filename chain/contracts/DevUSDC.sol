// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title DevUSDC
/// @notice A USDC-like token for local development and tests: 6 decimals,
/// EIP-2612 permit, and USDC's blocklist (a transfer from or to a blocked
/// address reverts), so tests can make a transfer revert. TEST TOKEN ONLY:
/// `mint` and `setBlocked` are open, so anyone can mint any amount or block
/// anyone. Never deploy it where the token is meant to have value.
contract DevUSDC is ERC20, ERC20Permit {
    constructor() ERC20("Dev USD Coin", "USDC") ERC20Permit("Dev USD Coin") {}

    /// @notice USDC's 6 decimals.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Addresses whose transfers revert, as USDC's blacklist.
    mapping(address => bool) public blocked;

    /// @notice Mints `amount` to `to`. Open to anyone: a dev token only.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Blocks or unblocks `account`. Open to anyone: a dev token only.
    function setBlocked(address account, bool isBlocked) external {
        blocked[account] = isBlocked;
    }

    function _update(address from, address to, uint256 value) internal override {
        require(!blocked[from] && !blocked[to], "DevUSDC: blocked address");
        super._update(from, to, value);
    }
}
