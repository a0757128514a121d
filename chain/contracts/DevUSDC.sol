// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title DevUSDC
/// @notice A USDC-like token for local development and tests: 6 decimals and
/// EIP-2612 permit. TEST TOKEN ONLY: `mint` is open, so anyone can mint any
/// amount. Never deploy it where the token is meant to have value.
contract DevUSDC is ERC20, ERC20Permit {
    constructor() ERC20("Dev USD Coin", "USDC") ERC20Permit("Dev USD Coin") {}

    /// @notice USDC's 6 decimals.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Mints `amount` to `to`. Open to anyone: a dev token only.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
