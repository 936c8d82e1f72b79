# pragma version ~=0.4.3
"""
@title Test GLM
@notice An 18-decimal ERC-20 standing in for Golem's tGLM on a local chain or a private testnet.
        `create()` is the faucet: it mints 1000 tokens to a caller holding fewer than 1000, as the
        faucet contract of Golem's test networks does. An allowance of max(uint256) is never spent
        down, so a payer approves the batch contract once.
"""

from ethereum.ercs import IERC20

implements: IERC20

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

name: public(String[32])
symbol: public(String[8])
decimals: public(constant(uint8)) = 18
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])

FAUCET_AMOUNT: constant(uint256) = 1000 * 10 ** 18


@deploy
def __init__(name_: String[32], symbol_: String[8]):
    self.name = name_
    self.symbol = symbol_


@internal
def _move(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "transfer to the zero address"
    held: uint256 = self.balanceOf[sender]
    assert held >= amount, "transfer amount exceeds balance"
    self.balanceOf[sender] = held - amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._move(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    allowed: uint256 = self.allowance[sender][msg.sender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "transfer amount exceeds allowance"
        self.allowance[sender][msg.sender] = allowed - amount
    self._move(sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def create():
    """
    @notice Mint 1000 tokens to the caller, if it holds fewer than 1000.
    """
    assert self.balanceOf[msg.sender] < FAUCET_AMOUNT, "Cannot acquire more funds"
    self.totalSupply += FAUCET_AMOUNT
    self.balanceOf[msg.sender] += FAUCET_AMOUNT
    log Transfer(sender=empty(address), receiver=msg.sender, value=FAUCET_AMOUNT)
