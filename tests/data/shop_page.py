"""A shop's product listing page, serialized as rrweb records a DOM.

Node format as in rrweb-snapshot: document (type 0), doctype (1), elements
(2) with their attributes and children, text (3, ``isStyle`` for CSS).
Attributes are what such pages carry: utility class lists, ``data-*``,
inline ``style``, ``href``/``src``/``srcset`` with ids and hashes, ARIA;
SVG icons with their path data; the whitespace text nodes between tags;
product names and descriptions drawn from a word list. Used by
``make_corpus.py``; deterministic for a given ``random.Random``.
"""

from __future__ import annotations

import random
from typing import Any

_WORDS = (
    "the of and to in is you that it for on with as are this be at or from by "
    "your all more new can will about one our free get now up out just see "
    "shop cart order price sale size color blue black white red green grey navy "
    "cotton organic classic slim fit relaxed soft warm light waterproof recycled "
    "premium everyday essential limited edition pack set bundle kit travel home "
    "kitchen outdoor running trail hiking yoga studio office desk lamp chair "
    "table sofa rug pillow blanket mug bottle bag backpack jacket hoodie shirt "
    "tee sweater jeans shorts dress skirt sock shoe sneaker boot sandal hat cap "
    "scarf glove watch wallet belt ring necklace case charger cable speaker "
    "headphones keyboard mouse monitor stand mat candle plant pot vase frame "
    "made designed crafted built tested loved rated reviewed shipped delivered "
    "returns easy fast quick day days week weeks year warranty guarantee quality "
    "comfort style durable lightweight breathable stretch stain resistant "
    "machine washable dishwasher safe hand wash dry clean care details features "
    "material materials dimensions weight fits true runs small large medium"
)

_CLASSES = (
    "flex inline-flex grid block hidden relative absolute sticky top-0 inset-0 "
    "items-center items-start justify-between justify-center gap-2 gap-4 gap-6 "
    "grid-cols-2 md:grid-cols-3 lg:grid-cols-4 col-span-2 w-full h-full "
    "max-w-7xl mx-auto px-4 px-6 py-2 py-4 py-8 mt-2 mt-4 mb-2 mb-4 space-y-2 "
    "rounded rounded-md rounded-lg rounded-full border border-gray-200 shadow-sm "
    "shadow-md bg-white bg-gray-50 bg-gray-900 bg-indigo-600 hover:bg-indigo-700 "
    "text-xs text-sm text-base text-lg text-2xl font-medium font-semibold "
    "font-bold text-gray-500 text-gray-700 text-gray-900 text-white "
    "text-indigo-600 line-through truncate line-clamp-2 leading-6 tracking-tight "
    "aspect-square object-cover object-center overflow-hidden transition "
    "duration-150 ease-in-out focus:outline-none focus:ring-2 "
    "focus:ring-indigo-500 group group-hover:opacity-75 sr-only z-10 z-50"
)
WORDS = _WORDS.split()
CLASSES = _CLASSES.split()

ICON_PATHS = (
    (
        "M2.25 3h1.386c.51 0 .955.343 1.087.835l.383 1.437M7.5 14.25a3 3 0 00-3 "
        "3h15.75m-12.75-3h11.218c1.121-2.3 2.1-4.684 2.924-7.138a60.114 60.114 0 "
        "00-16.536-1.84M7.5 14.25L5.106 5.272M6 20.25a.75.75 0 11-1.5 0 .75.75 0 011.5 "
        "0zm12.75 0a.75.75 0 11-1.5 0 .75.75 0 011.5 0z"
    ),
    (
        "M11.48 3.499a.562.562 0 011.04 0l2.125 5.111a.563.563 0 "
        "00.475.345l5.518.442c.499.04.701.663.321.988l-4.204 3.602a.563.563 0 "
        "00-.182.557l1.285 5.385a.562.562 0 01-.84.61l-4.725-2.885a.563.563 0 00-.586 "
        "0L6.982 20.54a.562.562 0 01-.84-.61l1.285-5.386a.562.562 0 "
        "00-.182-.557l-4.204-3.602a.563.563 0 01.321-.988l5.518-.442a.563.563 0 "
        "00.475-.345L11.48 3.5z"
    ),
    ("M21 21l-5.197-5.197m0 0A7.5 7.5 0 105.196 5.196a7.5 7.5 0 0010.607 10.607z"),
    (
        "M15.75 6a3.75 3.75 0 11-7.5 0 3.75 3.75 0 017.5 0zM4.501 20.118a7.5 7.5 0 "
        "0114.998 0A17.933 17.933 0 0112 21.75c-2.676 0-5.216-.584-7.499-1.632z"
    ),
)


class Page:
    """Serializes one page's DOM in rrweb's node format, numbering nodes
    from 1 as the recorder does, and remembers ids the incremental events
    refer to (cards, buttons, inputs, the cart counter)."""

    def __init__(self, rng: random.Random, cards: int) -> None:
        self.rng = rng
        self.cards = cards
        self.next_id = 0
        self.card_ids: list[int] = []
        self.button_ids: list[int] = []
        self.input_ids: list[int] = []
        self.checkbox_ids: list[int] = []
        self.text_ids: list[int] = []
        self.container_ids: list[int] = []
        self.cart_count_id = 0
        self.search_id = 0
        self.body_id = 0

    # --- node helpers ---------------------------------------------------

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def text(self, content: str) -> dict[str, Any]:
        return {"type": 3, "textContent": content, "id": self._id()}

    def ws(self, depth: int) -> dict[str, Any]:
        return self.text("\n" + "  " * depth)

    def el(
        self,
        tag: str,
        attributes: dict[str, Any] | None = None,
        children: list[dict[str, Any]] | None = None,
        *,
        svg: bool = False,
    ) -> dict[str, Any]:
        node: dict[str, Any] = {
            "type": 2,
            "tagName": tag,
            "attributes": attributes or {},
            "childNodes": [],
            "id": self._id(),
        }
        if svg:
            node["isSVG"] = True
        node["childNodes"] = children or []
        return node

    def classes(self, n: int) -> str:
        return " ".join(self.rng.sample(CLASSES, n))

    def words(self, lo: int, hi: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(lo, hi)))

    def sentence(self, lo: int, hi: int) -> str:
        s = self.words(lo, hi)
        return s[:1].upper() + s[1:] + "."

    def hexid(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def icon(self, path: str) -> dict[str, Any]:
        return self.el(
            "svg",
            {
                "xmlns": "http://www.w3.org/2000/svg",
                "fill": "none",
                "viewBox": "0 0 24 24",
                "stroke-width": "1.5",
                "stroke": "currentColor",
                "class": "h-6 w-6",
                "aria-hidden": "true",
            },
            [self.el("path", {"stroke-linecap": "round", "d": path}, svg=True)],
            svg=True,
        )

    # --- page parts -----------------------------------------------------

    def css(self) -> str:
        rules = []
        for i in range(60 + self.cards // 4):
            cls = self.rng.choice(CLASSES).replace(":", "\\:")
            decls = "; ".join(
                f"{self.rng.choice(['margin', 'padding', 'gap', 'top', 'width', 'height'])}: "
                f"{self.rng.choice([0, 0.25, 0.5, 1, 1.5, 2, 3, 4])}rem"
                for _ in range(self.rng.randint(1, 4))
            )
            rules.append(f".{cls}{'' if i % 3 else ':hover'} {{ {decls}; }}")
        return "\n".join(rules)

    def head(self) -> dict[str, Any]:
        d = 2
        css_node = self.text(self.css())
        css_node["isStyle"] = True
        return self.el(
            "head",
            {},
            [
                self.ws(d),
                self.el("meta", {"charset": "utf-8"}),
                self.ws(d),
                self.el(
                    "meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}
                ),
                self.ws(d),
                self.el("title", {}, [self.text("Shop all products | Example Store")]),
                self.ws(d),
                self.el(
                    "link",
                    {
                        "rel": "stylesheet",
                        "href": f"https://shop.example/_next/static/css/{self.hexid(16)}.css",
                    },
                ),
                self.ws(d),
                self.el("style", {"data-emotion": "css"}, [css_node]),
                self.ws(d),
                self.el(
                    "script",
                    {"src": f"https://shop.example/_next/static/chunks/{self.hexid(16)}.js"},
                    [self.text("SCRIPT_PLACEHOLDER")],
                ),
                self.ws(1),
            ],
        )

    def nav(self) -> dict[str, Any]:
        links = []
        for name in ("New", "Women", "Men", "Home", "Kitchen", "Outdoor", "Sale", "Stories"):
            links += [
                self.ws(5),
                self.el(
                    "li",
                    {"class": "flex"},
                    [
                        self.el(
                            "a",
                            {
                                "href": f"/collections/{name.lower()}",
                                "class": "text-sm font-medium text-gray-700 hover:text-gray-900",
                            },
                            [self.text(name)],
                        )
                    ],
                ),
            ]
        search = self.el(
            "input",
            {
                "type": "search",
                "name": "q",
                "placeholder": "Search products",
                "autocomplete": "off",
                "class": self.classes(6),
                "value": "",
            },
        )
        self.search_id = search["id"]
        self.input_ids.append(search["id"])
        count = self.text("0")
        self.cart_count_id = count["id"]
        cart = self.el(
            "button",
            {"type": "button", "class": "group flex items-center p-2", "aria-label": "Cart"},
            [self.icon(ICON_PATHS[0]), self.el("span", {"class": "ml-2 text-sm"}, [count])],
        )
        self.button_ids.append(cart["id"])
        return self.el(
            "header",
            {"class": "relative bg-white shadow-sm", "data-testid": "site-header"},
            [
                self.ws(3),
                self.el(
                    "nav",
                    {"aria-label": "Top", "class": "mx-auto max-w-7xl px-4"},
                    [
                        self.ws(4),
                        self.el("ul", {"class": "flex h-16 items-center gap-6"}, links),
                        self.ws(4),
                        self.el("form", {"action": "/search", "role": "search"}, [search]),
                        self.ws(4),
                        cart,
                        self.ws(3),
                    ],
                ),
                self.ws(2),
            ],
        )

    def filters(self) -> dict[str, Any]:
        groups = []
        for group in ("Color", "Size", "Material", "Price"):
            options = []
            for _ in range(self.rng.randint(4, 8)):
                value = self.rng.choice(WORDS)
                box = self.el(
                    "input",
                    {
                        "id": f"filter-{group.lower()}-{value}",
                        "name": f"{group.lower()}[]",
                        "value": value,
                        "type": "checkbox",
                        "class": "h-4 w-4 rounded border-gray-300 text-indigo-600",
                    },
                )
                self.checkbox_ids.append(box["id"])
                options += [
                    self.ws(6),
                    self.el(
                        "div",
                        {"class": "flex items-center"},
                        [
                            box,
                            self.el(
                                "label",
                                {
                                    "for": f"filter-{group.lower()}-{value}",
                                    "class": "ml-3 text-sm text-gray-600",
                                },
                                [self.text(value.capitalize())],
                            ),
                        ],
                    ),
                ]
            groups += [
                self.ws(4),
                self.el(
                    "fieldset",
                    {"class": "border-b border-gray-200 py-6"},
                    [
                        self.el("legend", {"class": "text-sm font-medium"}, [self.text(group)]),
                        self.el("div", {"class": "space-y-4 pt-6"}, options),
                    ],
                ),
            ]
        return self.el("aside", {"class": "hidden lg:block", "aria-label": "Filters"}, groups)

    def card(self) -> dict[str, Any]:
        rng = self.rng
        pid = rng.randint(10_000, 99_999)
        name = self.words(2, 5).title()
        slug = name.lower().replace(" ", "-")
        img = self.hexid(10)
        price = rng.randint(9, 250) + rng.choice((0.0, 0.5, 0.95, 0.99))
        stars = [self.icon(ICON_PATHS[1]) for _ in range(5)]
        button = self.el(
            "button",
            {
                "type": "button",
                "class": self.classes(7),
                "data-action": "add-to-cart",
                "data-product-id": str(pid),
            },
            [self.text("Add to cart")],
        )
        self.button_ids.append(button["id"])
        title = self.text(name)
        self.text_ids.append(title["id"])
        node = self.el(
            "div",
            {
                "class": f"group relative {self.classes(5)}",
                "data-product-id": str(pid),
                "style": f"--tw-ring-color: rgba({rng.randint(0, 255)}, 130, 246, 0.5);",
            },
            [
                self.ws(7),
                self.el(
                    "a",
                    {"href": f"/products/{slug}-{pid}", "class": "block overflow-hidden"},
                    [
                        self.el(
                            "img",
                            {
                                "src": f"https://cdn.shop.example/img/{img}/400x400.webp",
                                "srcset": f"https://cdn.shop.example/img/{img}/400x400.webp 1x, "
                                f"https://cdn.shop.example/img/{img}/800x800.webp 2x",
                                "alt": name,
                                "loading": "lazy",
                                "width": "400",
                                "height": "400",
                                "class": "aspect-square w-full object-cover object-center",
                            },
                        )
                    ],
                ),
                self.ws(7),
                self.el("h3", {"class": "mt-4 text-sm text-gray-700"}, [title]),
                self.ws(7),
                self.el(
                    "p",
                    {"class": "mt-1 text-sm text-gray-500 line-clamp-2"},
                    [self.text(self.sentence(8, 24))],
                ),
                self.ws(7),
                self.el(
                    "div",
                    {"class": "mt-2 flex items-center gap-2"},
                    [
                        self.el(
                            "span", {"class": "text-lg font-medium"}, [self.text(f"${price:.2f}")]
                        ),
                        self.el(
                            "span",
                            {"class": "text-sm text-gray-500 line-through"},
                            [self.text(f"${price * 1.25:.2f}")],
                        ),
                    ],
                ),
                self.ws(7),
                self.el(
                    "div",
                    {
                        "class": "flex items-center",
                        "aria-label": f"{rng.randint(30, 50) / 10} stars",
                    },
                    [
                        *stars,
                        self.el(
                            "span",
                            {"class": "ml-1 text-xs"},
                            [self.text(f"({rng.randint(1, 2000)})")],
                        ),
                    ],
                ),
                self.ws(7),
                button,
                self.ws(6),
            ],
        )
        self.card_ids.append(node["id"])
        return node

    def main(self) -> dict[str, Any]:
        cards = []
        for _ in range(self.cards):
            cards += [self.ws(5), self.card()]
        grid = self.el(
            "section",
            {
                "class": "grid grid-cols-2 gap-6 md:grid-cols-3 lg:grid-cols-4",
                "aria-labelledby": "products",
            },
            cards,
        )
        self.container_ids.append(grid["id"])
        return self.el(
            "main",
            {"class": "mx-auto max-w-7xl px-4 py-8", "id": "main"},
            [
                self.ws(3),
                self.el(
                    "h1",
                    {"id": "products", "class": "text-2xl font-bold"},
                    [self.text("All products")],
                ),
                self.ws(3),
                self.el("div", {"class": "flex gap-8"}, [self.filters(), grid]),
                self.ws(2),
            ],
        )

    def footer(self) -> dict[str, Any]:
        columns = []
        for _ in range(4):
            items = [
                self.el(
                    "li",
                    {},
                    [
                        self.el(
                            "a",
                            {"href": f"/pages/{self.rng.choice(WORDS)}"},
                            [self.text(self.words(1, 3).title())],
                        )
                    ],
                )
                for _ in range(6)
            ]
            columns.append(self.el("ul", {"class": "space-y-2 text-sm text-gray-500"}, items))
        return self.el(
            "footer",
            {"class": "bg-gray-50 border-t border-gray-200"},
            [
                self.el(
                    "div", {"class": "mx-auto max-w-7xl grid grid-cols-2 gap-8 px-4 py-8"}, columns
                ),
                self.el(
                    "p",
                    {"class": "text-xs text-gray-500"},
                    [self.text("\u00a9 2024 Example Store, Inc. All rights reserved.")],
                ),
            ],
        )

    def document(self) -> dict[str, Any]:
        doc_id = self._id()
        doctype = {"type": 1, "name": "html", "publicId": "", "systemId": "", "id": self._id()}
        html_id = self._id()
        head = self.head()
        body_children = [
            self.ws(2),
            self.nav(),
            self.ws(2),
            self.main(),
            self.ws(2),
            self.footer(),
            self.ws(1),
        ]
        body = self.el("body", {"class": "min-h-full bg-white antialiased"}, body_children)
        self.body_id = body["id"]
        self.container_ids.append(body["id"])
        html = {
            "type": 2,
            "tagName": "html",
            "attributes": {"lang": "en", "class": "h-full"},
            "childNodes": [head, self.ws(1), body],
            "id": html_id,
        }
        return {"type": 0, "childNodes": [doctype, html], "compatMode": "CSS1Compat", "id": doc_id}

    def component(self, query: str) -> dict[str, Any]:
        """A component the app mounts again and again (React re-renders the
        same templates): a toast, search suggestions, a tooltip, a mini
        cart line; fresh node ids, some varying text."""
        page, rng = self, self.rng
        kind = rng.randrange(4)
        if kind == 0:
            return page.el(
                "div",
                {
                    "class": "fixed bottom-4 right-4 z-50 rounded-md bg-gray-900 px-4 py-2 "
                    "text-sm text-white shadow-md",
                    "role": "status",
                    "aria-live": "polite",
                },
                [
                    page.icon(ICON_PATHS[0]),
                    page.el(
                        "span",
                        {"class": "ml-2"},
                        [page.text(f"Added {page.words(2, 4).title()} to your cart")],
                    ),
                ],
            )
        if kind == 1:
            items = [
                page.el(
                    "li",
                    {
                        "class": "cursor-pointer px-4 py-2 text-sm text-gray-700 hover:bg-gray-50",
                        "role": "option",
                        "id": f"suggestion-{i}",
                    },
                    [
                        page.el(
                            "a",
                            {"href": f"/search?q={query or 'a'}"},
                            [page.text(f"{query}{page.words(1, 3)}")],
                        )
                    ],
                )
                for i in range(rng.randint(3, 8))
            ]
            return page.el(
                "ul",
                {
                    "class": "absolute z-10 mt-1 w-full rounded-md bg-white shadow-md",
                    "role": "listbox",
                },
                items,
            )
        if kind == 2:
            return page.el(
                "div",
                {
                    "class": "absolute z-10 rounded bg-gray-900 px-2 py-1 text-xs text-white",
                    "role": "tooltip",
                    "style": f"top: {rng.randint(0, 900)}px; left: {rng.randint(0, 1440)}px;",
                },
                [page.text(page.sentence(2, 6))],
            )
        price = rng.randint(9, 250) + 0.99
        return page.el(
            "li",
            {"class": "flex py-6", "data-line-id": str(rng.randint(10_000, 99_999))},
            [
                page.el(
                    "img",
                    {
                        "src": f"https://cdn.shop.example/img/{page.hexid(10)}/96x96.webp",
                        "alt": "",
                        "class": "h-24 w-24 rounded-md object-cover",
                    },
                ),
                page.el(
                    "div",
                    {"class": "ml-4 flex flex-1 flex-col"},
                    [
                        page.el(
                            "h3",
                            {"class": "text-base font-medium text-gray-900"},
                            [page.text(page.words(2, 4).title())],
                        ),
                        page.el(
                            "p",
                            {"class": "mt-1 text-sm text-gray-500"},
                            [page.text(f"Qty {rng.randint(1, 3)}")],
                        ),
                        page.el(
                            "p", {"class": "ml-4 text-sm font-medium"}, [page.text(f"${price:.2f}")]
                        ),
                    ],
                ),
            ],
        )
