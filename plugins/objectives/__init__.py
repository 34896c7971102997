"""Built-in objectives; their recipes are the YAML files in ``recipes/`` (core/recipes.py)."""
from pathlib import Path

RECIPES = Path(__file__).parent / "recipes"
