"""Agora's own games. Each module holds one game's rules, prompt text and heuristic; this file registers them."""

from arenas.games import kuhn_poker, tictactoe
from arenas.games import consensus, signalling
from arenas.games import iterated_pd, negotiation
from arenas.games import climbing
from arenas.games import coop_code
from arenas.registry import ArenaSpec, register

register(ArenaSpec(kuhn_poker.NAME, kuhn_poker.raw_env, "2", False, "zero-sum",
                   "Kuhn poker, OpenSpiel's rules; exact exploitability available", kuhn_poker.heuristic, "nash"))
register(ArenaSpec(tictactoe.NAME, tictactoe.raw_env, "2", False, "zero-sum",
                   "Tic-tac-toe on cells 1-9", tictactoe.heuristic, "win-block-centre"))
register(ArenaSpec(signalling.NAME, signalling.raw_env, "2", False, "shared",
                   "Lewis signalling game: a speaker's letter code names one of K objects to a listener",
                   signalling.heuristic, "fixed-code"))
register(ArenaSpec(consensus.NAME, consensus.raw_env, "N >= 3", True, "shared",
                   "Agents learn the sum or max of private numbers by talking over a channel graph",
                   consensus.heuristic, "flooding"))
register(ArenaSpec(negotiation.NAME, negotiation.raw_env, "2", False, "general-sum",
                   "Split a pool of items with private values, talking through a channel (Lewis et al. 2017)",
                   negotiation.heuristic, "falling-threshold"))
register(ArenaSpec(iterated_pd.NAME, iterated_pd.raw_env, "2", True, "general-sum",
                   "Iterated prisoner's dilemma, simultaneous moves, optional talk before each round",
                   iterated_pd.heuristic, "tit-for-tat"))
register(ArenaSpec(climbing.NAME, climbing.raw_env, "2", True, "shared",
                   "Climbing game (Claus & Boutilier 1998): cooperative 3x3 matrix game, simultaneous moves",
                   climbing.heuristic, "social-optimum"))
register(ArenaSpec(coop_code.NAME, coop_code.raw_env, "2", False, "shared",
                   "Two agents write one Python solution (helper aux + main function), graded in a sandbox on unit tests "
                   "with MAGRPO's reward levels", coop_code.heuristic, "oracle"))
