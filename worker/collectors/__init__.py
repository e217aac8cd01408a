"""Collectors: ccxt.pro watch loops -> normalised records -> the publish queue."""
