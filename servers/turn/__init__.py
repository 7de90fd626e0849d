"""netcore-turn: the STUN/TURN daemon."""
