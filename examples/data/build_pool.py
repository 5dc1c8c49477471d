"""Build the unlabeled pool of dishes for the "is this dish keto?" example.

Reads the hand-written catalogue in ``examples/data/catalogue/*.jsonl`` (one dish
per line: ``{"dish", "ingredients", optional "raw", optional "lang"}``) and
writes ``examples/data/keto_pool.jsonl``: one unlabeled item per line,
``{"dish": ..., "ingredients": [...]}``, in the three shapes real inputs come in:

* clean: the dish name and its ingredients, lowercase, without quantities;
* name only (``"ingredients": []``), as a menu or a nutrition database shows a
  dish, sometimes with a menu-style ("House ... with Fries") or database-style
  ("Salmon, grilled", "Lasagna, frozen meal") variant of the name;
* raw recipe lines with quantities, units and notes: the catalogue's
  hand-written ``raw`` lines when it has them (including the non-English
  recipes, marked with ``lang``), otherwise lines synthesised from the clean
  ingredient names ("2 tbsp olive oil", "1 onion, finely chopped",
  "salt and pepper, to taste").

The script uses the standard library only and a fixed random seed, so
``python examples/data/build_pool.py`` rewrites the pool byte-identically every
time. No line is written twice and the lines are shuffled deterministically.

The catalogue and this script were written by hand for this project; they
contain no third-party data and are released under the project's MIT licence.
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
CATALOGUE = HERE / "catalogue"
POOL = HERE / "keto_pool.jsonl"
SEED = 20240611
MAX_NAME = 80
MAX_INGREDIENTS = 40

# How often each shape is emitted for a dish (tuned for roughly 30% name-only,
# 35% clean and 35% raw-lines in the pool).
P_CLEAN = 0.86
P_NAME = 0.52
P_SECOND_NAME = 0.12
P_RAW_SYNTH = 0.87
P_FOREIGN_NAME = 0.45
P_FOREIGN_CLEAN = 0.35
P_PLAIN_CLEAN = 0.40
P_PLAIN_SECOND_NAME = 0.30

# ---------------------------------------------------------------------------
# name variants
# ---------------------------------------------------------------------------

MENU_PREFIXES = ["Classic ", "Homemade ", "House ", "Traditional ", "Grandma's ", "Chef's ",
                 "Our Famous ", "Signature "]
MENU_SIDES = {
    "american": [" with Fries", " with Side Salad", " with Coleslaw", " & Fries"],
    "british_irish": [" with Chips", " with Mushy Peas", " with Side Salad"],
    "italian": [" with Garlic Bread", " with Side Salad", " with Focaccia"],
    "indian": [" with Basmati Rice", " with Garlic Naan", " with Rice and Naan"],
    "chinese": [" with Steamed Rice", " with Egg Fried Rice", " with White Rice"],
    "southeast_asian": [" with Jasmine Rice", " with Steamed Rice"],
    "japanese_korean": [" with Steamed Rice", " with Miso Soup"],
    "mexican": [" with Rice and Beans", " with Chips and Salsa"],
    "middle_eastern_greek": [" with Pita", " with Rice Pilaf", " with Fries"],
    "french": [" with Green Salad", " with Frites", " with Baguette"],
    "german_central_european": [" with Potatoes", " with Spätzle", " with Red Cabbage"],
    "spanish_portuguese_latin": [" with Rice", " with Crusty Bread"],
    "benelux": [" with Fries", " with Salad"],
    "breakfast": [" with Toast", " with Hash Browns", " with Fruit Cup"],
    "desserts_baking": [" à la Mode", " with Whipped Cream", " (Slice)"],
    "drinks": [" (Large)", " (Iced)", " (16 oz)", ", Grande"],
    "salads_soups": [" (Cup)", " (Bowl)", " with Crusty Bread"],
    "snacks_sides": [" (Large)", " Basket", " (Shareable)", " (Side)"],
    "low_carb_keto_recipes": [" (Keto)", " - Low Carb", " (Keto, Gluten-Free)", " (Low-Carb)"],
    "sauces_dips": [" (Side)", " (2 oz)"],
    "plain_foods": [" (1 serving)", " (small)"],
}
NO_PREFIX = {"drinks", "sauces_dips", "plain_foods"}

DB_SUFFIXES = {
    "desserts_baking": [", homemade", ", commercially prepared", ", from bakery", ", 1 piece"],
    "drinks": [", 1 cup", ", 8 fl oz", ", 12 fl oz", ", 16 fl oz"],
    "breakfast": [", homemade", ", restaurant", ", 1 serving"],
    "snacks_sides": [", 1 serving", ", restaurant", ", homemade", ", frozen, heated"],
    "salads_soups": [", 1 cup", ", 1 bowl", ", restaurant", ", homemade"],
    "sauces_dips": [", 2 tbsp", ", 1/4 cup", ", homemade", ", store-bought"],
    "plain_foods": [", 1 serving", ", 100 g", ", 1 oz", ""],
    "low_carb_keto_recipes": [", homemade", ", low-carb recipe", ", keto recipe", ""],
}
DB_SUFFIXES_MAIN = [", homemade", ", restaurant", ", frozen meal", ", prepared from recipe", ", takeout"]

RECIPE_STYLES = ["Easy {n}", "The Best {n}", "{n} Recipe", "Quick {n}", "Homemade {n}", "{n} (30-Minute)",
                 "Healthy {n}", "Authentic {n}", "Simple {n}", "My Favorite {n}", "Weeknight {n}",
                 "Best Ever {n}", "{n} (Step by Step)"]
RECIPE_STYLES_KETO = ["{n} (Keto, Low Carb)", "Easy {n}", "{n} Recipe", "Best {n} (Low Carb)",
                      "{n} - Keto & Gluten-Free", "5-Ingredient {n}"]

METHODS = ("Grilled", "Roasted", "Fried", "Baked", "Steamed", "Sautéed", "Pan-Seared", "Smoked", "Braised",
           "Poached", "Scrambled", "Boiled", "Stuffed", "Crispy", "Creamy", "Loaded", "Glazed", "Marinated",
           "Mashed", "Pan-Fried", "Slow-Cooked", "Spicy", "Toasted", "Buttered")
DB_HEADS = {"cheese", "yogurt", "milk", "bread", "beans", "rice", "juice", "nuts", "oil", "sauce", "steak",
            "chop", "chops", "tea", "coffee", "soup", "salad", "pie", "cake", "cookies", "muffins", "pancakes",
            "waffles", "eggs", "chicken", "salmon", "shrimp", "potatoes", "fries", "wings", "tacos", "pizza",
            "burger", "sandwich", "noodles", "curry", "dip", "seeds", "chips", "cereal", "crackers", "beer",
            "wine", "smoothie", "latte", "milkshake", "stew", "pasta", "lasagna"}


DRINK_MODIFIERS = {"black", "green", "iced", "orange", "apple", "hot", "cold", "sweet", "light", "dry",
                   "chamomile", "unsweetened", "chocolate", "lager", "caffè"}


def lower_tail(text: str) -> str:
    """Database style: the first letter as it is, every other word lowercase unless it is all caps."""
    words = text.split(" ")
    out = [words[0]] + [w if (w.isupper() and len(w) > 1) else w.lower() for w in words[1:]]
    return " ".join(out)


def menu_variant(name: str, source: str, rng: random.Random) -> str:
    sides = MENU_SIDES.get(source, [" with Side Salad"])
    if source == "sauces_dips":
        choice = rng.choice(["Side of {n}", "{n} (Side)", "{n} with Tortilla Chips", "{n} with Pita Chips"])
        variant = choice.format(n=name)
    elif source in NO_PREFIX or (" with " in name.lower() or rng.random() < 0.5):
        if " with " in name.lower() and source not in NO_PREFIX:
            variant = rng.choice(MENU_PREFIXES) + name
        else:
            variant = name + rng.choice(sides)
    else:
        variant = rng.choice(MENU_PREFIXES) + name
    if source == "low_carb_keto_recipes" and re.search(r"keto|low-carb|low carb", name, re.I):
        variant = rng.choice(MENU_PREFIXES) + name  # the name already says it
    elif source == "low_carb_keto_recipes" and rng.random() < 0.4:
        variant = "Keto-Friendly " + name
    if rng.random() < 0.08:
        variant = variant.upper()
    return variant


def db_variant(name: str, source: str, rng: random.Random) -> str:
    if "," in name:  # already database style
        return name
    head, sep, tail = name.partition(" with ")
    words = head.split(" ")
    if len(words) >= 2 and words[0] in METHODS:
        base = lower_tail(" ".join(words[1:]))
        variant = f"{base[0].upper()}{base[1:]}, {words[0].lower()}"
    elif len(words) == 2 and words[1].lower() in DB_HEADS and (
            source == "plain_foods" or (source == "drinks" and words[0].lower() in DRINK_MODIFIERS)):
        variant = f"{words[1].capitalize()}, {words[0].lower()}"
    else:
        variant = lower_tail(head)
        suffixes = DB_SUFFIXES.get(source, DB_SUFFIXES_MAIN)
        variant += rng.choice(suffixes)
    if sep:
        variant += ", with " + tail.lower()
    return variant


def recipe_variant(name: str, source: str, rng: random.Random) -> str:
    if source == "low_carb_keto_recipes":
        styles = RECIPE_STYLES_KETO if "keto" not in name.lower() else RECIPE_STYLES[:8]
    else:
        styles = RECIPE_STYLES
    return rng.choice(styles).format(n=name)


# ---------------------------------------------------------------------------
# raw recipe lines synthesised from clean ingredient names
# ---------------------------------------------------------------------------
# Each rule: (pattern, templates). A template may start with "U:" (US units) or
# "M:" (metric); a recipe uses one system throughout. {x} is the ingredient name.

R = [
    (r"^(kosher |sea |coarse |flaky )?salt$", ["salt, to taste", "1 tsp kosher salt", "1/2 tsp salt",
                                                "pinch of salt", "sea salt", "salt as needed"]),
    (r"^(black |coarse black )?pepper$|^black pepper$", ["freshly ground black pepper", "1/2 tsp black pepper",
                                                         "black pepper, to taste", "1/4 tsp ground black pepper"]),
    (r"white pepper$", ["1/4 tsp white pepper", "pinch of ground white pepper"]),
    (r"^(water|ice water|boiling water)$", ["U:1 cup {x}", "U:1/2 cup {x}", "M:250 ml {x}", "M:100 ml {x}"]),
    (r"^ice$", ["ice", "1 cup ice cubes"]),
    (r"^olive oil$", ["U:2 tbsp extra-virgin olive oil", "U:3 tbsp olive oil", "U:1/4 cup olive oil",
                      "M:2 tbsp olive oil", "M:30 ml extra virgin olive oil", "olive oil, for drizzling"]),
    (r"^(toasted )?sesame oil$", ["1 tsp toasted sesame oil", "2 tsp sesame oil", "1 tbsp sesame oil"]),
    (r"^mct oil$", ["1 tbsp MCT oil", "2 tsp MCT oil"]),
    (r"^(vegetable|canola|sunflower|peanut) oil$", ["U:2 tbsp {x}", "U:1/4 cup {x}", "M:2 tbsp {x}",
                                                    "{x}, for frying", "M:3 tbsp {x}"]),
    (r"oil$", ["U:2 tbsp {x}", "U:1 tbsp {x}", "M:2 tbsp {x}"]),
    (r"^(peanut|almond|cashew) butter$", ["U:1/2 cup {x}", "2 tbsp {x}", "U:1/4 cup creamy {x}", "M:60 g {x}"]),
    (r"^(unsalted |salted |grass-fed )?butter$", ["U:2 tbsp {x}", "U:4 tbsp unsalted butter, softened",
                                                  "U:1/2 cup (1 stick) butter, melted", "U:1 tbsp {x}",
                                                  "M:50 g butter", "M:30 g unsalted butter, softened",
                                                  "M:100 g butter, at room temperature"]),
    (r"^(ghee|lard|duck fat|beef dripping|schmaltz)$", ["2 tbsp {x}", "3 tablespoons {x}", "M:40 g {x}"]),
    (r"^garlic$", ["3 cloves garlic, minced", "2 garlic cloves, crushed", "4 garlic cloves, finely chopped",
                   "1 clove garlic, grated", "6 cloves garlic, thinly sliced"]),
    (r"^ginger garlic paste$", ["1 tbsp ginger garlic paste", "2 tsp ginger-garlic paste"]),
    (r"^(fresh )?ginger$", ["1 tbsp grated fresh ginger", "1-inch piece ginger, peeled and minced",
                            "2 tsp minced ginger", "M:2 cm piece of ginger, grated"]),
    (r"^(ground ginger|garlic powder|onion powder)$", ["1 tsp {x}", "1/2 tsp {x}"]),
    (r"^(yellow |white |sweet )?onion$", ["1 {x}, finely chopped", "1 large {x}, diced", "1 medium {x}, chopped",
                                          "1/2 {x}, thinly sliced"]),
    (r"^red onion$", ["1 red onion, thinly sliced", "1/2 red onion, finely diced", "1 small red onion, chopped"]),
    (r"^(yellow |white |red )?onions$", ["2 {x}, thinly sliced", "3 large {x}, chopped", "M:500 g {x}, sliced"]),
    (r"^pearl onions$", ["U:1 cup pearl onions, peeled", "M:200 g pearl onions, peeled"]),
    (r"^shallots?$", ["2 shallots, minced", "1 shallot, finely chopped", "3 shallots, thinly sliced"]),
    (r"^(scallions|green onions|spring onions)$", ["3 {x}, thinly sliced", "4 {x}, chopped",
                                                   "2 {x}, white and green parts separated"]),
    (r"^leeks?$", ["2 leeks, white and light green parts only, sliced", "1 leek, cleaned and chopped"]),
    (r"^carrots$", ["2 carrots, peeled and diced", "3 carrots, cut into chunks", "M:200 g carrots, sliced",
                    "2 medium carrots, grated"]),
    (r"^carrot$", ["1 carrot, peeled and diced", "1 large carrot, grated", "1 small carrot, finely chopped"]),
    (r"^celery$", ["2 celery stalks, chopped", "1 rib celery, diced", "3 stalks celery, sliced"]),
    (r"bell peppers$", ["2 {x}, seeded and sliced", "3 {x}, cut into strips"]),
    (r"bell pepper$", ["1 {x}, seeded and diced", "1 {x}, thinly sliced", "1/2 {x}, chopped"]),
    (r"^(jalapeño|serrano pepper|green chili|red chili|poblano pepper|thai chili)$",
     ["1 {x}, seeded and minced", "1 {x}, finely chopped", "1 {x}, thinly sliced"]),
    (r"(chilies|chiles|chillies|jalapeños|peppers)$", ["2 {x}, finely chopped", "4 {x}", "3 {x}, thinly sliced"]),
    (r"^(tomato)$", ["1 large tomato, sliced", "1 ripe tomato, chopped", "1 Roma tomato, diced"]),
    (r"^tomatoes$", ["2 ripe tomatoes, chopped", "3 Roma tomatoes, diced", "M:400 g tomatoes, chopped",
                     "4 tomatoes, cut into wedges"]),
    (r"^cherry tomatoes$", ["U:1 cup cherry tomatoes, halved", "U:1 pint cherry tomatoes",
                            "M:250 g cherry tomatoes, halved"]),
    (r"^(crushed tomatoes|diced tomatoes|tomato passata|tomato puree|tomato sauce|san marzano tomatoes)$",
     ["U:1 (28 oz) can {x}", "U:1 (14.5 oz) can {x}", "M:400 g tin {x}", "M:500 ml {x}", "U:2 cups {x}"]),
    (r"^tomato paste$", ["2 tbsp tomato paste", "1 tablespoon tomato paste", "3 tbsp tomato paste"]),
    (r"^sweet potato(es)?$", ["U:2 medium sweet potatoes, peeled and cubed", "M:600 g sweet potatoes, cubed",
                              "1 large sweet potato, peeled and diced"]),
    (r"potatoes$", ["U:2 lb {x}, peeled and cubed", "U:4 medium {x}, peeled and cut into chunks",
                    "M:1 kg {x}, peeled", "M:500 g {x}, cut into wedges", "3 large {x}, peeled and diced"]),
    (r"potato$", ["1 large {x}", "1 medium {x}, scrubbed"]),
    (r"mushrooms$", ["U:8 oz {x}, sliced", "U:1 lb {x}, quartered", "M:250 g {x}, sliced", "2 cups sliced {x}"]),
    (r"^(spinach|baby spinach|kale|arugula|mixed greens|watercress|collard greens|swiss chard|escarole)$",
     ["U:4 cups {x}", "2 large handfuls {x}", "M:200 g {x}", "1 bunch {x}, chopped", "U:5 oz {x}"]),
    (r"lettuce$", ["1 head {x}, chopped", "4 leaves {x}", "2 cups shredded {x}"]),
    (r"^cauliflower rice$", ["U:4 cups cauliflower rice", "U:1 (12 oz) bag frozen riced cauliflower",
                             "M:500 g cauliflower rice", "U:3 cups riced cauliflower"]),
    (r"^(broccoli|cauliflower)$", ["1 head {x}, cut into florets", "U:4 cups {x} florets",
                                   "M:500 g {x} florets", "1 large head {x}, chopped"]),
    (r"^zucchini noodles$", ["U:4 cups zucchini noodles (from about 3 zucchini)", "2 large zucchini, spiralized",
                             "M:500 g courgetti"]),
    (r"^zucchini$", ["2 medium zucchini, diced", "1 large zucchini, sliced into half-moons",
                     "M:300 g zucchini, sliced"]),
    (r"^eggplant$", ["1 large eggplant, cut into 1-inch cubes", "M:1 aubergine (about 400 g), diced",
                     "2 medium eggplants, sliced into rounds"]),
    (r"cabbage$", ["1/2 head {x}, shredded", "M:400 g {x}, finely shredded", "4 cups shredded {x}"]),
    (r"^cucumbers?$", ["1 cucumber, diced", "1/2 English cucumber, thinly sliced", "1 large cucumber, sliced"]),
    (r"^avocados?$", ["1 ripe avocado, sliced", "2 avocados, diced", "1 avocado, mashed"]),
    (r"^(lemon|lime)$", ["1 {x}, cut into wedges", "juice of 1 {x}", "zest and juice of 1 {x}",
                         "{x} wedges, to serve"]),
    (r"^(lemon|lime) juice$", ["2 tbsp fresh {x}", "1 tbsp {x}", "juice of 1/2 {m}", "1/4 cup fresh {x}"]),
    (r"^(lemon|orange|lime) zest$", ["1 tsp {x}", "zest of 1 {m}"]),
    (r"^(parsley|cilantro|basil|mint|dill|chives|thai basil|holy basil|fresh basil|italian parsley)$",
     ["2 tbsp chopped fresh {x}", "1/4 cup {x} leaves, chopped", "a handful of fresh {x}", "{x}, to garnish",
      "M:1 small bunch {x}, chopped"]),
    (r"^(thyme|rosemary|sage|tarragon)$", ["2 sprigs fresh {x}", "1 tsp dried {x}", "1 tbsp chopped fresh {x}"]),
    (r"^oregano$", ["1 tsp dried oregano", "1/2 tsp dried oregano", "1 tbsp fresh oregano leaves"]),
    (r"^bay leaf$|^bay leaves$", ["2 bay leaves", "1 bay leaf"]),
    (r"^(cumin|coriander|cinnamon|nutmeg|allspice|cardamom|turmeric|cloves)$",
     ["1 tsp ground {x}", "1/2 tsp ground {x}", "1/4 tsp ground {x}", "pinch of ground {x}"]),
    (r"(seeds)$", ["1 tsp {x}", "1 tbsp {x}", "2 tsp {x}"]),
    (r"(powder|masala|seasoning|spice|paprika|cayenne pepper|sumac|za'atar|ras el hanout|chili flakes|"
     r"red pepper flakes|peppercorns|herbes de provence|five-spice powder|gochugaru|aleppo pepper|espelette pepper)$",
     ["1 tsp {x}", "1/2 tsp {x}", "2 tsp {x}", "1 tbsp {x}"]),
    (r"^curry leaves$", ["10-12 curry leaves", "1 sprig curry leaves"]),
    (r"^chicken breasts?$", ["U:2 boneless skinless chicken breasts",
                             "U:1 1/2 lb chicken breasts, cut into bite-size pieces",
                             "M:500 g chicken breast fillets, sliced", "M:2 chicken breasts (about 400 g)"]),
    (r"^chicken thighs?$", ["U:2 lb boneless skinless chicken thighs", "U:6 bone-in, skin-on chicken thighs",
                            "M:600 g boneless chicken thighs, cut into chunks", "M:8 chicken thighs"]),
    (r"^chicken (wings|drumsticks|legs|tenderloins|pieces)$", ["U:2 lb {x}", "M:1 kg {x}", "U:3 lb {x}, patted dry"]),
    (r"^whole chicken$", ["U:1 whole chicken (about 4 lb)", "M:1 whole chicken (about 1.8 kg)"]),
    (r"^(chicken|shredded chicken|grilled chicken)$", ["U:2 cups shredded cooked chicken",
                                                       "U:1 lb chicken, cut into pieces", "M:500 g chicken",
                                                       "M:300 g cooked chicken, shredded"]),
    (r"^ground (beef|pork|lamb|turkey|chicken)$", ["U:1 lb {x}", "U:1 1/2 lb lean {x}", "M:500 g {x}", "M:400 g {x}"]),
    (r"(steak|ribeye|sirloin|tenderloin|flank|skirt|strip|picanha)$",
     ["U:1 1/2 lb {x}", "U:1 lb {x}, patted dry", "M:600 g {x}", "M:2 x 250 g {x}"]),
    (r"(sliced beef|beef slices|lamb slices)$", ["U:1 lb {x}", "M:400 g {x}", "U:12 oz {x}"]),
    (r"^(beef|lamb|veal|pork|mutton|doner meat|wild boar|rabbit|duck|roast pork|shredded beef)$",
     ["U:2 lb {x}, cut into chunks", "M:1 kg {x}", "U:1 1/2 lb {x}", "M:600 g {x}"]),
    (r"hot dogs$", ["8 {x}", "4 {x}", "6 {x}"]),
    (r"(chuck|brisket|short ribs|shoulder|belly|roast|shank|shanks|ribs|loin|cheek|oxtail|knuckle|hock|leg)$",
     ["U:3 lb {x}, cut into 2-inch pieces", "U:2 lb {x}", "M:1.2 kg {x}, cut into chunks", "M:1 kg {x}"]),
    (r"chops?$", ["4 {x}", "4 bone-in {x}, about 1 inch thick"]),
    (r"^(thick-cut )?bacon$", ["U:6 slices bacon, chopped", "U:4 strips thick-cut bacon", "M:150 g smoked bacon, diced",
                               "8 rashers bacon"]),
    (r"^(pancetta|guanciale|bacon lardons|lardons)$", ["U:4 oz {x}, diced", "M:150 g {x}, diced", "U:6 oz {x}"]),
    (r"(sausages?|chorizo|kielbasa|andouille|bratwurst|merguez|hot dogs)$",
     ["U:1 lb {x}, sliced", "M:300 g {x}", "U:12 oz {x}", "M:400 g {x}, sliced"]),
    (r"^(ham|salami|genoa salami|prosciutto|pepperoni|turkey breast|roast beef|capicola|corned beef|canadian bacon)$",
     ["U:4 oz {x}, thinly sliced", "8 slices {x}", "M:100 g {x}", "U:1/2 lb sliced {x}"]),
    (r"^(shrimp|prawns)$", ["U:1 lb large {x}, peeled and deveined", "M:400 g raw {x}, peeled", "U:12 oz {x}",
                            "M:500 g king {x}"]),
    (r"fillets?$", ["U:4 (6-ounce) {x}", "M:4 x 150 g {x}", "U:1 1/2 lb {x}", "2 {x}, skin on"]),
    (r"^canned tuna$", ["U:2 (5 oz) cans tuna, drained", "M:2 tins tuna (160 g each), drained"]),
    (r"^(salmon|cod|white fish|sea bass|tuna|ahi tuna|catfish|halibut|tilapia|hake|branzino|mahi mahi)$",
     ["U:1 1/2 lb {x}, skin removed", "M:600 g {x}", "U:4 {x} portions (about 6 oz each)"]),
    (r"^eggs$", ["3 large eggs, beaten", "2 eggs", "4 large eggs", "6 eggs", "2 large eggs, at room temperature"]),
    (r"^egg$", ["1 large egg", "1 egg, lightly beaten", "1 egg"]),
    (r"^egg yolks?$", ["3 egg yolks", "2 large egg yolks", "4 egg yolks"]),
    (r"^egg whites?$", ["2 egg whites", "3 large egg whites"]),
    (r"^hard-boiled eggs?$", ["4 hard-boiled eggs, chopped", "2 hard-boiled eggs, halved"]),
    (r"^(whole milk|milk|skim milk|oat milk|unsweetened almond milk|almond milk|evaporated milk|steamed milk)$",
     ["U:1 cup {x}", "U:1/2 cup {x}", "U:2 cups {x}", "M:250 ml {x}", "M:200 ml {x}"]),
    (r"^(heavy cream|heavy whipping cream|double cream|whipping cream)$",
     ["U:1/2 cup heavy cream", "U:1 cup heavy whipping cream", "M:200 ml double cream", "M:150 ml cream",
      "U:1/3 cup heavy cream"]),
    (r"^coconut milk$", ["U:1 (13.5 oz) can coconut milk", "U:1 (14 oz) can full-fat coconut milk",
                         "M:400 ml tin coconut milk"]),
    (r"^buttermilk$", ["U:1 cup buttermilk", "U:2 cups buttermilk", "M:300 ml buttermilk"]),
    (r"^(sour cream|crème fraîche|mexican crema)$", ["U:1/2 cup {x}", "{x}, for serving", "M:150 g {x}",
                                                     "U:1 cup {x}"]),
    (r"yogurt$", ["U:1 cup {x}", "U:1/2 cup plain {x}", "M:150 g {x}", "M:200 g {x}"]),
    (r"^cream cheese$", ["U:4 oz cream cheese, softened", "U:8 oz cream cheese, at room temperature",
                         "M:100 g cream cheese", "2 tbsp cream cheese"]),
    (r"(parmesan cheese|parmesan|pecorino romano|pecorino|grana padano)$",
     ["U:1/2 cup grated {x}", "U:1/4 cup freshly grated {x}, plus more for serving", "M:50 g {x}, finely grated"]),
    (r"(feta cheese|feta|cotija cheese|queso fresco|goat cheese|blue cheese)$",
     ["U:1/2 cup crumbled {x}", "M:100 g {x}, crumbled", "U:4 oz {x}, crumbled"]),
    (r"(ricotta cheese|ricotta|mascarpone)$", ["U:1 cup {x}", "M:250 g {x}", "U:15 oz {x}"]),
    (r"(paneer|halloumi cheese|halloumi|tofu)$", ["U:8 oz {x}, cubed", "M:250 g {x}, cut into cubes",
                                                  "U:1 (14 oz) block {x}, pressed and cubed"]),
    (r"(mozzarella|fresh mozzarella)$", ["U:8 oz {x}, torn", "M:125 g ball {x}, sliced"]),
    (r"cheese$", ["U:1 cup shredded {x}", "U:2 cups shredded {x}", "4 slices {x}", "M:150 g {x}, grated",
                  "M:100 g {x}"]),
    (r"(broth|stock|bone broth|dashi)$", ["U:2 cups {x}", "U:4 cups {x}", "U:1 cup low-sodium {x}",
                                          "M:500 ml {x}", "M:1 litre {x}"]),
    (r"^(red wine|white wine|marsala wine|dry sherry|sherry)$", ["U:1/2 cup dry {x}", "U:1 cup {x}", "M:150 ml {x}"]),
    (r"^(beer|ale|dark beer|lager)$", ["U:1 (12 oz) bottle {x}", "M:330 ml {x}", "U:1 cup cold {x}"]),
    (r"^(vodka|cognac|brandy|rum|sake|mirin|shaoxing wine|rice wine|kirsch|tequila|bourbon)$",
     ["2 tbsp {x}", "U:1/4 cup {x}", "M:50 ml {x}", "1 tbsp {x}"]),
    (r"^(mayonnaise|ketchup|bbq sauce|barbecue sauce|marinara sauce|sugar-free marinara sauce|salsa|pico de gallo|"
     r"enchilada sauce|red enchilada sauce|buffalo sauce|ranch dressing|caesar dressing|tzatziki|hummus|guacamole|"
     r"pesto|basil pesto|tahini sauce)$",
     ["U:1/2 cup {x}", "U:1/3 cup {x}", "M:100 ml {x}", "{x}, for serving", "U:1 cup {x}"]),
    (r"(sauce|aminos|vinegar|syrup|honey|molasses|mustard|sriracha|dressing|vinaigrette)$",
     ["2 tbsp {x}", "1 tbsp {x}", "U:1/4 cup {x}", "3 tablespoons {x}", "1 tsp {x}"]),
    (r"(paste|gochujang|doubanjiang|miso|tahini|harissa|tamarind)$", ["2 tbsp {x}", "3 tablespoons {x}", "1 tbsp {x}"]),
    (r"^(cooked (jasmine |white |)rice|cooked rice|day-old rice)$", ["U:3 cups {x}", "U:2 cups {x}, preferably day-old",
                                                                     "M:500 g {x}"]),
    (r"(spaghetti|penne|penne rigate|fettuccine|linguine|rigatoni|fusilli|farfalle|orzo|ziti|macaroni|pappardelle|"
     r"tagliatelle|bucatini|orecchiette|ditalini|trofie|tonnarelli|pasta|shells|lasagna sheets)$",
     ["U:1 lb {x}", "U:12 oz {x}", "U:8 oz dried {x}", "M:400 g {x}", "M:500 g {x}", "M:250 g dried {x}"]),
    (r"(noodles|vermicelli|tortellini|gnocchi|ravioli)$", ["U:8 oz {x}", "U:1 lb {x}", "M:250 g {x}",
                                                           "2 portions fresh {x}", "M:400 g {x}"]),
    (r"(rice|quinoa|couscous|bulgur|farro|barley|millet|grits|polenta)$",
     ["U:1 cup {x}", "U:1 1/2 cups {x}, rinsed", "U:2 cups {x}", "M:200 g {x}", "M:300 g {x}"]),
    (r"(rolled oats|oats)$", ["U:1 cup {x}", "U:2 cups {x}", "M:100 g {x}"]),
    (r"tortillas?$", ["8 {x}, warmed", "6 small {x}", "4 large {x}", "{x}, warmed, for serving"]),
    (r"(buns|rolls)$", ["4 {x}, split and toasted", "6 {x}", "4 {x}"]),
    (r"(bun|roll|bagel|croissant|english muffin)$", ["1 {x}, split", "1 {x}, toasted"]),
    (r"baguette$", ["1 {x}, sliced", "1/2 {x}, cut into rounds", "crusty {x}, to serve"]),
    (r"(pita bread|naan|flatbread|lavash)$", ["4 {x}, warmed", "{x}, for serving", "2 rounds {x}"]),
    (r"bread$", ["4 slices {x}", "8 slices {x}", "2 thick slices {x}", "M:200 g {x}"]),
    (r"(breadcrumbs|panko|panko breadcrumbs|pork rinds)$", ["U:1 cup {x}", "U:1/2 cup {x}", "M:100 g {x}",
                                                            "M:60 g {x}"]),
    (r"^pie crust$", ["1 (9-inch) unbaked pie crust", "1 refrigerated pie crust"]),
    (r"^puff pastry$", ["1 sheet puff pastry, thawed", "M:320 g ready-rolled puff pastry"]),
    (r"^(phyllo dough|filo pastry)$", ["U:1 lb phyllo dough, thawed", "12 sheets phyllo dough"]),
    (r"(pastry|dough)$", ["U:1 lb {x}", "M:500 g {x}", "1 ball {x}", "M:250 g {x}"]),
    (r"wrappers$", ["1 package {x}", "24 {x}", "30 {x}"]),
    (r"crackers$", ["1 sleeve {x}", "20 {x}", "M:100 g {x}"]),
    (r"chips$", ["U:4 cups {x}", "M:150 g {x}", "1 (10 oz) bag {x}"]),
    (r"shells$", ["12 {x}", "8 {x}", "1 box {x}"]),
    (r"^(almond flour|blanched almond flour)$", ["U:1 cup {x}", "U:2 cups blanched almond flour", "M:100 g {x}",
                                                 "M:200 g ground almonds", "U:1/2 cup {x}"]),
    (r"^coconut flour$", ["U:1/4 cup coconut flour", "U:1/3 cup coconut flour", "M:40 g coconut flour"]),
    (r"(flour)$", ["U:2 cups {x}", "U:1 1/2 cups {x}", "U:1/4 cup {x}", "2 tbsp {x}", "M:250 g {x}", "M:200 g {x}"]),
    (r"^(cornstarch|potato starch|tapioca starch|arrowroot)$", ["1 tbsp {x}", "2 tbsp {x}", "U:1/2 cup {x}",
                                                                "1 tsp {x}"]),
    (r"^(stevia|monk fruit|liquid stevia)$", ["a few drops liquid stevia", "1 tsp stevia", "stevia, to taste",
                                              "1 tbsp monk fruit sweetener"]),
    (r"(sugar|erythritol|allulose|jaggery|sweetener)$", ["S:U:1/2 cup {x}", "S:U:1 cup {x}", "S:U:3/4 cup {x}",
                                                         "S:M:100 g {x}", "S:M:150 g {x}", "S:U:1/4 cup {x}",
                                                         "V:1 tsp {x}", "V:2 tsp {x}", "V:1 tbsp {x}",
                                                         "V:pinch of {x}"]),
    (r"^(baking powder|baking soda|cream of tartar)$", ["1 tsp {x}", "1/2 tsp {x}", "2 tsp {x}", "1/4 tsp {x}"]),
    (r"extract$", ["1 tsp {x}", "2 tsp pure {x}", "1/2 tsp {x}"]),
    (r"yeast$", ["U:2 1/4 tsp active dry yeast", "1 packet instant yeast", "M:7 g sachet fast-action dried yeast"]),
    (r"^(xanthan gum|psyllium husk powder|gelatin)$", ["1/2 tsp {x}", "2 tbsp {x}", "1 tsp {x}"]),
    (r"cocoa powder$", ["U:1/3 cup unsweetened cocoa powder", "2 tbsp {x}", "M:30 g {x}"]),
    (r"chocolate chips$", ["U:1 cup {x}", "U:1/2 cup {x}", "M:150 g {x}"]),
    (r"chocolate$", ["U:4 oz {x}, chopped", "M:100 g {x}, chopped", "M:200 g {x}"]),
    (r"^apples$", ["U:4 apples, peeled, cored and sliced", "M:1 kg apples", "3 large apples, diced"]),
    (r"^apple$", ["1 apple, cored and sliced", "1 green apple, diced"]),
    (r"^bananas?$", ["2 ripe bananas", "1 banana, sliced", "3 very ripe bananas, mashed"]),
    (r"(strawberries|blueberries|raspberries|blackberries|mixed berries|cherries|cranberries|grapes)$",
     ["U:1 cup {x}", "U:2 cups fresh {x}", "M:200 g {x}", "U:1/2 cup {x}", "M:125 g {x}"]),
    (r"^pineapple$", ["1 cup pineapple chunks", "1/2 fresh pineapple, peeled and cut into chunks"]),
    (r"^mango$", ["1 ripe mango, diced", "1 large mango, peeled and sliced"]),
    (r"(raisins|sultanas|dried cranberries|dates|prunes|dried apricots|currants)$",
     ["U:1/2 cup {x}", "M:75 g {x}", "U:1/4 cup {x}"]),
    (r"^(almonds|walnuts|pecans|cashews|peanuts|pistachios|pine nuts|hazelnuts|macadamia nuts|flaked almonds)$",
     ["U:1/2 cup {x}", "U:1/4 cup toasted {x}", "U:1 cup chopped {x}", "M:50 g {x}", "M:100 g {x}, roughly chopped"]),
    (r"^(black beans|kidney beans|red kidney beans|chickpeas|cannellini beans|pinto beans|white beans|navy beans|"
     r"butter beans|lima beans)$",
     ["U:1 (15 oz) can {x}, drained and rinsed", "U:2 cups cooked {x}", "M:400 g tin {x}, drained",
      "M:240 g cooked {x}"]),
    (r"(lentils|split peas|dal)$", ["U:1 cup {x}, rinsed", "M:200 g {x}", "U:1 1/2 cups {x}"]),
    (r"^(peas|green peas|corn|corn kernels|edamame)$", ["U:1 cup frozen {x}", "U:1/2 cup {x}", "M:150 g {x}",
                                                        "M:100 g frozen {x}"]),
    (r"^green beans$", ["U:1 lb green beans, trimmed", "M:300 g green beans, trimmed", "U:2 cups green beans"]),
    (r"^(capers|brined capers)$", ["2 tbsp capers, drained", "1 tbsp capers, rinsed"]),
    (r"olives$", ["U:1/2 cup {x}, pitted", "M:100 g {x}", "a handful of {x}"]),
    (r"^anchovies$", ["4 anchovy fillets", "6 anchovies in oil, chopped"]),
    (r"pickles$", ["sliced {x}", "U:1/4 cup chopped {x}", "4 {x}, chopped"]),
    (r"^bean sprouts$", ["U:1 cup bean sprouts", "U:2 cups fresh bean sprouts", "M:100 g bean sprouts"]),
    (r"^lemongrass$", ["2 stalks lemongrass, bruised", "1 stalk lemongrass, finely chopped"]),
    (r"^(galangal|turmeric root)$", ["1-inch piece {x}, sliced", "5 slices {x}"]),
    (r"(kaffir lime leaves|lime leaves)$", ["4 {x}, torn", "6 {x}"]),
    (r"^star anise$", ["2 star anise", "3 whole star anise"]),
    (r"^saffron$", ["a pinch of saffron threads", "1/4 tsp saffron, crumbled"]),
    (r"^vanilla bean$", ["1 vanilla bean, split and seeds scraped", "1/2 vanilla pod"]),
    (r"^(nori|seaweed)$", ["4 sheets nori", "2 sheets {x}, cut into strips"]),
    (r"(bok choy|chinese broccoli)$", ["4 heads baby bok choy, halved", "M:300 g {x}, trimmed", "1 bunch {x}"]),
    (r"^refried beans$", ["U:1 (16 oz) can refried beans", "U:1 cup refried beans, warmed", "M:400 g refried beans"]),
    (r"^(clams|mussels|cockles)$", ["U:2 lb {x}, scrubbed", "M:1 kg {x}, cleaned", "U:1 lb {x}"]),
    (r"^(squid|octopus|scallops|lobster meat|lump crab meat|imitation crab)$",
     ["U:1 lb {x}", "M:500 g {x}", "U:8 oz {x}"]),
    (r"^smoked salmon$", ["U:4 oz smoked salmon", "M:100 g smoked salmon, sliced",
                          "U:8 oz thinly sliced smoked salmon"]),
    (r"^(masa harina|cornmeal|semolina|precooked cornmeal)$", ["U:2 cups {x}", "U:1 cup {x}", "M:250 g {x}"]),
    (r"juice$", ["U:1/2 cup {x}", "U:1 cup {x}", "M:100 ml {x}", "M:250 ml {x}"]),
    (r"^whipped cream$", ["whipped cream, for topping", "U:1 cup whipped cream", "whipped cream, to serve"]),
    (r"relish$", ["2 tbsp {x}", "U:1/4 cup {x}"]),
    (r"^(sweetened condensed milk|condensed milk)$", ["U:1 (14 oz) can sweetened condensed milk",
                                                      "M:397 g tin condensed milk",
                                                      "U:1/2 cup sweetened condensed milk"]),
    (r"chipotle peppers in adobo$", ["2 chipotle peppers in adobo, minced, plus 1 tbsp sauce",
                                     "1 chipotle pepper in adobo, chopped"]),
    (r"^cream of (mushroom|chicken) soup$", ["1 (10.5 oz) can condensed {x}", "1 can {x}"]),
    (r"puree$", ["U:1 (15 oz) can {x}", "U:1 cup {x}", "M:400 g {x}"]),
    (r"^croutons$", ["U:1 cup croutons", "U:2 cups garlic croutons", "a handful of croutons"]),
    (r"(jam|jelly|chutney|preserves|marmalade)$", ["2 tbsp {x}", "U:1/4 cup {x}", "U:1/2 cup {x}", "M:100 g {x}"]),
    (r"^(french fries)$", ["U:1 lb frozen french fries", "french fries, to serve", "M:500 g oven chips"]),
    (r"^sauerkraut$", ["U:2 cups sauerkraut, drained", "M:500 g sauerkraut", "U:1 (16 oz) jar sauerkraut"]),
    (r"^kimchi$", ["U:1 cup chopped kimchi", "U:2 cups aged kimchi", "M:200 g kimchi"]),
    (r"^(spaghetti squash)$", ["1 medium spaghetti squash (about 3 lb)",
                               "1 large spaghetti squash, halved and seeded"]),
    (r"^(asparagus)$", ["U:1 lb asparagus, woody ends trimmed", "M:400 g asparagus", "1 bunch asparagus"]),
    (r"^(beets|turnips|parsnips|radishes|rutabaga|celery root|celeriac|daikon|korean radish|okra|fennel|tomatillos|"
     r"brussels sprouts|artichoke hearts)$",
     ["U:1 lb {x}, trimmed and chopped", "M:500 g {x}", "U:2 cups {x}, chopped", "M:300 g {x}, diced"]),
    (r"^(espresso|coffee|brewed coffee|cold brew coffee)$", ["U:1 cup {x}", "1 shot {x}", "M:250 ml {x}"]),
    (r"(ice cream)$", ["2 scoops {x}", "U:1 pint {x}", "M:500 ml {x}"]),
    (r"^(marshmallows|mini marshmallows)$", ["U:2 cups mini marshmallows", "U:1 (10 oz) bag {x}"]),
    (r"(coconut|desiccated coconut|shredded coconut)$", ["U:1 cup {x}", "U:1/2 cup {x}", "M:80 g {x}"]),
    (r"(hominy)$", ["U:2 (25 oz) cans hominy, drained", "M:800 g hominy, drained"]),
    (r"^(kecap manis|fish sauce|oyster sauce)$", ["2 tbsp {x}", "3 tbsp {x}", "1 tbsp {x}"]),
]
RULES = [(re.compile(p), t) for p, t in R]
DEFAULT = ["{x}", "U:1 cup {x}", "M:100 g {x}", "{x}", "U:1/2 cup {x}"]
SALTS = {"salt", "kosher salt", "sea salt"}
PEPPERS = {"black pepper", "pepper"}
SALT_AND_PEPPER = ["salt and pepper, to taste", "salt and freshly ground black pepper",
                   "kosher salt and black pepper, to taste", "salt and pepper"]
SKIP_SYNTH = {"plain_foods", "drinks"}


def templates_for(ingredient: str) -> list[str]:
    """The first rule's templates that matches the ingredient, else the default ones."""
    return next((templates for pattern, templates in RULES if pattern.search(ingredient)), DEFAULT)


def synth_line(ingredient: str, system: str, sweet: bool, rng: random.Random) -> str:
    templates = templates_for(ingredient)
    # S: only in sweet recipes (baking, desserts), V: only in savoury ones
    wanted, unwanted = ("S:", "V:") if sweet else ("V:", "S:")
    templates = [t[2:] if t.startswith(wanted) else t for t in templates if not t.startswith(unwanted)]
    usable = [t for t in templates if not t.startswith(("U:", "M:")) or t.startswith(system + ":")]
    template = rng.choice(usable or templates)
    if template[:2] in ("U:", "M:"):
        template = template[2:]
    main = ingredient.split(" ")[0]  # lemon juice -> lemon, for "juice of 1/2 lemon"
    return template.format(x=ingredient, m=main)


def unit_style(lines: list[str], rng: random.Random) -> list[str]:
    """Spell the units the way one recipe site does: tbsp / tablespoons / Tbsp, tsp / teaspoons."""
    tbsp = rng.choice(["tbsp", "tbsp", "tablespoon", "Tbsp", "T"])
    tsp = rng.choice(["tsp", "tsp", "teaspoon", "tsp."])

    def spell(unit: str, word: str):
        def replace(match: re.Match) -> str:
            amount = match.group(1)
            plural = word in ("tablespoon", "teaspoon") and not re.fullmatch(r"(1|1/\d|a)", amount)
            return f"{amount} {word}{'s' if plural else ''}"
        return replace

    out = []
    for line in lines:
        line = re.sub(r"(\S+) tbsp\b", spell("tbsp", tbsp), line)
        line = re.sub(r"(\S+) tsp\b", spell("tsp", tsp), line)
        out.append(line)
    return out


SWEET_SOURCES = {"desserts_baking", "breakfast", "drinks"}


def synth_raw(ingredients: list[str], source: str, rng: random.Random) -> list[str]:
    system = "U" if rng.random() < 0.68 else "M"
    sweet = source in SWEET_SOURCES
    items = list(ingredients)
    merge = any(i in SALTS for i in items) and any(i in PEPPERS for i in items) and rng.random() < 0.75
    if merge:
        items = [i for i in items if i not in SALTS and i not in PEPPERS]
    lines = [synth_line(i, system, sweet, rng) for i in items]
    if merge:
        lines.append(rng.choice(SALT_AND_PEPPER))
    return unit_style(lines, rng)


# ---------------------------------------------------------------------------
# pool
# ---------------------------------------------------------------------------

def load_catalogue() -> list[dict]:
    dishes = []
    for path in sorted(CATALOGUE.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            item = json.loads(line)
            item["source"] = path.stem
            item["where"] = f"{path.name}:{number}"
            dishes.append(item)
    return dishes


def clean_ingredients(ingredients: list[str], rng: random.Random) -> list[str]:
    """The catalogue's list; now and then without salt, pepper and water, as many clean lists leave them out."""
    if rng.random() < 0.25:
        trimmed = [i for i in ingredients if i not in SALTS | PEPPERS | {"water"}]
        if trimmed:
            return trimmed
    return list(ingredients)


def forms_for(dish: dict, rng: random.Random) -> list[tuple[str, str, list[str]]]:
    """(shape, name, ingredients) items for one catalogue dish."""
    name, ingredients, source = dish["dish"], dish["ingredients"], dish["source"]
    out: list[tuple[str, str, list[str]]] = []
    if dish.get("lang"):
        out.append(("raw", name, list(dish["raw"])))
        if rng.random() < P_FOREIGN_NAME:
            out.append(("name", name, []))
        if rng.random() < P_FOREIGN_CLEAN:
            out.append(("clean", name, clean_ingredients(ingredients, rng)))
        return out
    if source == "plain_foods":
        out.append(("name", name, []))
        if rng.random() < P_PLAIN_SECOND_NAME:
            out.append(("name", rng.choice([db_variant, menu_variant])(name, source, rng), []))
        if rng.random() < P_PLAIN_CLEAN:
            out.append(("clean", name, list(ingredients)))
        return out
    if rng.random() < P_CLEAN:
        shown = recipe_variant(name, source, rng) if rng.random() < 0.15 else name
        out.append(("clean", shown, clean_ingredients(ingredients, rng)))
    if rng.random() < P_NAME:
        for count in range(2 if rng.random() < P_SECOND_NAME else 1):
            pick = rng.random()
            if pick < 0.45 and count == 0:
                shown = name
            elif pick < 0.72:
                shown = menu_variant(name, source, rng)
            else:
                shown = db_variant(name, source, rng)
            out.append(("name", shown, []))
    if dish.get("raw"):
        shown = recipe_variant(name, source, rng) if rng.random() < 0.25 else name
        out.append(("raw", shown, list(dish["raw"])))
    elif source not in SKIP_SYNTH and len(ingredients) >= 3 and rng.random() < P_RAW_SYNTH:
        shown = recipe_variant(name, source, rng) if rng.random() < 0.25 else name
        out.append(("raw", shown, synth_raw(ingredients, source, rng)))
    return out


def build(dishes: list[dict]) -> tuple[list[str], Counter]:
    rng = random.Random(SEED)
    lines: list[str] = []
    seen: set[str] = set()
    shapes: Counter = Counter()
    for dish in dishes:
        for shape, name, ingredients in forms_for(dish, rng):
            name = name.strip()
            if len(name) > MAX_NAME:
                continue
            line = json.dumps({"dish": name, "ingredients": ingredients[:MAX_INGREDIENTS]}, ensure_ascii=False)
            if line in seen:
                continue
            seen.add(line)
            lines.append(line)
            shapes[shape + ("_" + dish["lang"] if dish.get("lang") and shape == "raw" else "")] += 1
    rng.shuffle(lines)
    return lines, shapes


def main() -> int:
    dishes = load_catalogue()
    lines, shapes = build(dishes)
    with open(POOL, "w", encoding="utf-8", newline="\n") as out:
        out.write("\n".join(lines) + "\n")
    summary = ", ".join(f"{shape} {count}" for shape, count in sorted(shapes.items()))
    print(f"{POOL.name}: {len(lines)} lines from {len(dishes)} catalogue dishes ({summary})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
