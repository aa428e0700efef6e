"""Deterministic TinyStories-like corpus generator.

Produces simple children's stories in the layout of the TinyStories training files: each story, then
``"\\n<|endoftext|>\\n"``; a story may start with a blank line, paragraphs are separated by single newlines.
It exists so that benchmarks and first experiments need no download. It is *not* TinyStories: the text
comes from about 200 sentence templates whose slots are filled from an embedded English lexicon
(~1,600 real words and names, Zipf-weighted) plus a long generated tail (English-like syllable words,
derivations and compounds of real words, typos, rare names), so that the number of distinct words keeps
growing with corpus size roughly the way it does in real text (Heaps' law).

Output is a pure function of ``(n_bytes, seed)``: the randomness is a counter-based generator
(SplitMix64 over numpy ``uint64`` arrays) with integer-only sampling, so the bytes do not depend on the
process, ``PYTHONHASHSEED``, the platform, or the numpy version. ``generate_text(n)`` is a prefix of
``generate_text(m)`` for ``n <= m`` (both cut the same endless story stream at a story boundary).

Only the standard library and numpy are used (no numba), so importing this module is cheap.

API: :func:`iter_documents`, :func:`generate_text`, :func:`write_corpus`.
"""

from __future__ import annotations

import functools
import math
import os
import re
import tempfile
from typing import Callable, Iterator

import numpy as np

__all__ = ["SPECIAL_TOKEN", "DOC_SEPARATOR", "iter_documents", "generate_text", "write_corpus"]

SPECIAL_TOKEN = "<|endoftext|>"
#: What follows every story in the file (TinyStories layout).
DOC_SEPARATOR = "\n" + SPECIAL_TOKEN + "\n"

_STORIES_PER_BLOCK = 2048  # fixed: part of the definition of the stream (changing it changes the output)
_M64 = (1 << 64) - 1

# ---------------------------------------------------------------------------------------------------
# Randomness: counter-based SplitMix64, vectorized. Every draw is addressed by (seed, block, stream).
# ---------------------------------------------------------------------------------------------------
_GOLDEN = 0x9E3779B97F4A7C15
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB


def _mix64(x: int) -> int:
    x = (x + _GOLDEN) & _M64
    x = ((x ^ (x >> 30)) * _C1) & _M64
    x = ((x ^ (x >> 27)) * _C2) & _M64
    return x ^ (x >> 31)


def _key(*parts: int) -> int:
    h = 0x243F6A8885A308D3
    for p in parts:
        h = _mix64(h ^ (p & _M64))
    return h


def _u32(key: int, n: int) -> np.ndarray:
    """n uniform uint32 values (as uint64), a pure function of key."""
    with np.errstate(over="ignore"):
        z = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(_GOLDEN) + np.uint64(key)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_C1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_C2)
        z = z ^ (z >> np.uint64(31))
    return z >> np.uint64(32)


class _Dist:
    """A discrete distribution with integer weights; sampling is exact integer arithmetic."""

    __slots__ = ("cum", "total")

    def __init__(self, weights):
        weights = list(weights)
        if not weights or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("bad weights")
        tot = sum(weights)
        if tot >= 1 << 31:  # rescale exactly (integers), keeping every outcome possible
            weights = [max(1, w * (1 << 30) // tot) if w else 0 for w in weights]
        cum = np.cumsum(np.asarray(weights, dtype=np.int64))
        if int(cum[-1]) >= 1 << 32:
            raise ValueError("weights too large")
        self.cum = cum.astype(np.uint64)
        self.total = int(cum[-1])

    def sample(self, u: np.ndarray) -> np.ndarray:
        r = (u * np.uint64(self.total)) >> np.uint64(32)
        return np.searchsorted(self.cum, r, side="right").astype(np.int64)


@functools.lru_cache(maxsize=None)
def _zipf(n: int, offset: int, half_exp: int = 2) -> tuple[int, ...]:
    """Zipf-like integer weights ~ 1/(rank + offset)**(half_exp/2), exact integer arithmetic only."""
    out = []
    for r in range(n):
        x = r + offset
        d = x ** (half_exp // 2)
        if half_exp % 2:
            d = d * math.isqrt(x * 10**12) // 10**6
        out.append(max(1, 10**24 // d))
    return tuple(out)


_TAIL_OFFSET = 150
_TAIL_HALF_EXP = 4


def _tailw(n: int) -> list[int]:
    """Weights for a generated tail: steeper than the head, so new words keep appearing (Heaps' law)."""
    return _zipf(n, _TAIL_OFFSET, _TAIL_HALF_EXP)


def _mixture(parts: list[tuple[tuple[int, ...], int]], scale: int = 1 << 30) -> list[int]:
    """Concatenate weight lists, giving part i a total mass of share_i/1e6 of ``scale``."""
    out: list[int] = []
    for w, share_ppm in parts:
        tot = sum(w)
        mass = scale * share_ppm // 1_000_000
        out.extend(max(1, x * mass // tot) for x in w)
    return out


# ---------------------------------------------------------------------------------------------------
# Lexicon. Lists are ordered roughly by how common the words are in children's stories.
# ---------------------------------------------------------------------------------------------------
_GIRL_NAMES = """Lily Sue Mia Lucy Amy Anna Sara Emma Jane Molly Ellie Kitty Daisy Rose Sally Lisa Zoe Mary
Bella Ruby Grace Sophie Mandy Jill Kate Lola Millie Abby Ava Olivia Chloe Hannah Susie Polly Rosie Nina Julie
Maya Tina Amelia Ella Lulu Betty Clara Penny Sandy Ivy Alice Gina Nora Emily Jenny Hope Tara Kim Dolly Bonnie
Fiona Megan Heidi Layla Stella Wendy Hazel Luna Poppy Mimi Sophia""".split()
_BOY_NAMES = """Tim Tom Ben Sam Max Jack Timmy Bob Mark Billy Joe Jake Leo Sammy Spot Buddy Mike Tommy Fred Ted
Bobby Jim Danny Dan Peter Alex John Harry Rex Toby Oliver Jimmy Kevin Ollie Charlie Luke Bill Ned Pete Roy
Eddie Henry Sid Lucas Finn Noah Jacob Adam Zack Rob Ethan Owen Liam Ryan Kyle Dave Gus Milo Rocky Benny Bruno
Freddy Jonny Oscar Teddy""".split()
# (singular, plural) pairs are derived by rule unless written "sing:plural".
_ANIMALS = """cat dog bird bunny puppy kitten bear fox mouse:mice frog fish:fish duck lion owl rabbit monkey
elephant squirrel turtle cow pig horse sheep:sheep bee butterfly ant snake tiger deer:deer giraffe zebra
chicken hen goat wolf:wolves dolphin whale penguin kangaroo hippo crab bug ladybug spider worm dinosaur dragon
unicorn pony lamb chick parrot raccoon otter seal shark octopus snail beetle caterpillar puppy bat goose:geese
mole hedgehog""".split()
_NOUNS = """ball toy tree park box car house book flower hat cake door sky water garden room sun picture boat
kite stick rock stone cookie apple bed bag doll truck train bike shoe sock cup plate spoon bowl window table
chair home school friend day game song star moon cloud rain snow hill river lake sea beach sand shell leaf:leaves
grass bush forest farm field road town city shop store toy yard pond nest hole cave castle tower bridge wall
fence gate key lock map coin treasure chest jar bottle basket blanket pillow teddy bear crayon paper pencil
pen brush paint drum guitar piano bell whistle balloon gift present party candle hat coat dress shirt scarf
glove boot umbrella bucket shovel wagon swing slide sandwich pie candy ice cream juice milk bread soup egg
banana orange carrot cherry grape lemon pear peach berry strawberry pizza cheese honey sugar jam muffin cupcake
clock lamp phone computer robot rocket plane ship bus wheel button ribbon necklace ring crown wand mirror
picture letter card puzzle block kite sticker bubble feather flag tent rope net leash collar bone ladder
shelf drawer closet kitchen bathroom tub soap towel toothbrush sofa carpet rug floor roof chimney fire
light shadow wind storm rainbow mountain island ocean wave boat sail seed plant root branch fruit vegetable
pumpkin corn tomato potato bean nut acorn mud puddle path trail sign corner street rock pebble crystal gem
jewel diamond gold pearl box bag purse wallet watch camera radio television toy truck vase spirit thumb
jacket helmet mask costume blocks marble top yo-yo rattle cradle crib stroller bottle bib diaper cookie jar
oven stove fridge sink pot pan kettle teapot fork knife:knives napkin tray basket picnic lunch dinner
breakfast snack treat meal lollipop cupcake donut pancake waffle cereal yogurt noodle salad sauce pepper salt
onion lettuce melon watermelon pineapple plum kiwi coconut peanut popcorn chip cracker pretzel biscuit toast
bagel butter pudding jelly gum chocolate vanilla mint cinnamon carousel circus tent clown magician parade
festival fair race contest prize trophy medal ribbon team coach player referee goal net bat racket glove
helmet skateboard scooter sled skate ski surfboard kayak canoe raft anchor compass telescope microscope
magnet battery wire tool hammer nail screw saw drill wrench tape glue scissors ruler eraser notebook
backpack lunchbox desk chalk board lesson story poem song rhyme riddle joke word name number shape circle
square triangle heart diamond line dot spot stripe pattern color sound noise music voice whisper echo
dream wish idea plan secret surprise adventure journey trip visit vacation holiday birthday gift card
letter envelope stamp mailbox package parcel delivery truck tractor digger crane bulldozer ambulance
firetruck police helicopter submarine spaceship planet comet galaxy meteor volcano desert valley canyon
cliff waterfall stream creek spring swamp marsh jungle rainforest glacier iceberg igloo snowman snowflake
icicle mitten earmuff sweater hoodie pajamas slipper sandal sneaker button zipper pocket sleeve collar
belt bracelet earring locket brooch hairbrush comb bow headband crown tiara cape wand broom mop bucket
sponge dust dirt pebble boulder sandbox seesaw trampoline hammock fountain statue bench fence gate hedge
lawn barn stable coop kennel doghouse birdhouse treehouse hut cabin cottage palace mansion igloo tunnel
bridge lighthouse windmill factory bakery library museum hospital church temple station airport harbor
dock pier island""".split()
_PEOPLE = """mom dad mommy daddy grandma grandpa sister brother baby teacher friend aunt uncle neighbor
farmer doctor king queen prince princess man:men woman:women lady child:children kid boy girl family
friends""".split()
_PLACES = """park garden forest beach house school store zoo farm lake pond river playground yard kitchen
backyard woods field hill library town castle jungle meadow bakery market shop street sea city cave""".split()
_FOOD = """cake cookies apples candy ice cream soup pizza bread sandwiches carrots cheese pie juice milk
bananas berries grapes muffins cupcakes honey eggs popcorn pasta rice cereal""".split()
# Verbs: base or base:past (irregular). Transitive (take an object) and intransitive.
_VT = """see:saw find:found take:took play want like love get:got make:made give:gave look help have:had
hold:held share pick catch:caught throw:threw build:built open clean fix paint draw:drew bring:brought
show carry eat:ate hug kick push pull touch need keep:kept visit buy:bought hide:hid use try wash feed:fed
follow grab chase collect count climb ride:rode fill drop find:found hear:heard save lose:lost miss teach:taught
tell:told read:read write:wrote break:broke borrow return protect cook bake decorate explore fold cut:cut
plant water wear:wore sell:sold spill trust thank remember forget:forgot invite enjoy watch kiss lift
carry shake:shook stir squeeze polish mend greet admire examine discover appreciate ignore believe
imagine understand:understood notice observe measure weigh mix pour spread:spread sprinkle slice chop peel
wrap tie untie zip button tickle pinch poke tap pet brush comb dress feed chase scare surprise rescue guard
defend attack bite:bit sting:stung scratch lick sniff smell taste swallow chew nibble crunch munch gobble
slurp sip kick toss bounce catch:caught roll dig:dug bury hide:hid seek:sought search reach grab snatch
steal:stole keep:kept lend:lent borrow repair glue sew:sewed knit weave:wove sketch color trace copy
print:printed type record film photograph hang:hung arrange sort organize stack pile load unload pack
unpack deliver send:sent receive accept refuse allow forbid:forbade permit promise warn remind tease
bother annoy please comfort calm cheer encourage praise reward punish scold forgive:forgave obey respect
honor celebrate""".split()
_VI = """play run:ran jump walk go:went come:came swim:swam fly:flew sing:sang dance laugh smile cry sleep:slept
sit:sat stand:stood hop skip rest wait listen shout cheer giggle nod shine:shone grow:grew fall:fell
hurry wander roll spin:spun float sparkle crawl splash clap wiggle twirl bounce slide:slid climb
whisper yell scream shiver sneeze yawn leave:left stay return agree try win:won stop explore travel
arrive depart march stomp tiptoe sneak:snuck creep:crept dash race zoom glide soar dive:dove drift sink:sank
wobble tremble shake:shook wave wink blink frown pout sulk grin chuckle snicker sob weep:wept howl bark
meow purr chirp tweet quack moo oink roar hiss buzz squeak growl snore sniffle cough hiccup burp
stretch bend:bent kneel:knelt squat lean:leaned lie:lay rise:rose wake:woke nap relax breathe pray
wonder worry hope pretend practice learn study think:thought remember dream:dreamed listen count""".split()
_DOUBLING = set("""stop hop skip drop hug nod clap grab plan pat rub wag tap trip jog chat spin run swim sit
dig shop tip ship step wrap knit beg zip whip drip slip grip flip nap chop sob pop rob""".split())
_ADJ = """big little small happy sad good nice new old red blue green yellow pink purple orange black white
brown shiny pretty beautiful fun funny kind scared angry tired hungry special soft hard fast slow loud quiet
tall short long warm cold hot wet dry dark bright clean dirty busy lazy silly brave strong weak smart curious
gentle friendly lonely excited proud sleepy sweet yummy fluffy fuzzy round sharp heavy light tiny huge
colorful magic magical wild safe careful favorite best great wonderful amazing fancy shy calm cozy grumpy
bouncy sticky smooth rough noisy sparkly golden silver empty full rich poor young lucky polite honest
helpful hopeful cheerful playful thankful jolly merry creative clever wise bossy stubborn fierce mighty
delicate fragile glad upset worried surprised nervous confused bored reliable ancient enormous gigantic
miniature spotted striped plain simple hollow solid thick thin narrow wide deep shallow steep flat bumpy
slippery shaky wobbly crunchy juicy tasty salty sour bitter spicy fresh rotten ripe raw stale frozen
melted chilly freezing boiling sunny rainy cloudy windy snowy foggy stormy misty dusty muddy sandy grassy
leafy rocky hilly green gray fancy plain ugly cute adorable lovely charming graceful clumsy awkward brilliant
dull dim glowing shimmering twinkly glittery shiny patient impatient generous greedy selfish jealous mean
rude naughty obedient loyal faithful trusty sneaky tricky mysterious strange weird odd unusual ordinary
normal famous important useful useless valuable precious expensive cheap broken whole perfect messy neat
tidy organized hairy furry feathery scaly slimy squishy sticky bumpy prickly spiky hairy spooky scary
creepy gloomy peaceful quiet lively energetic active sporty healthy sick hurt sore itchy dizzy grateful
joyful delighted thrilled amazed astonished frightened terrified anxious embarrassed ashamed guilty
disappointed miserable cranky fussy moody""".split()
_ADV = """happily quickly slowly carefully sadly loudly quietly gently suddenly softly proudly bravely kindly
excitedly nervously angrily sweetly brightly calmly eagerly gladly patiently politely curiously silently
gracefully clumsily lazily sleepily hungrily greedily generously safely easily together again too
tightly loosely""".split()
_INT = [
    "very", "so", "really", "too", "super", "quite", "a little", "extra", "very, very"]
_FEEL = """happy sad scared excited proud sorry surprised angry tired hungry lonely curious worried
nervous glad upset brave calm safe silly sleepy thankful bored""".split()
_COLORS = "red blue green yellow pink purple orange black white brown gold silver".split()
_FAM = "mom dad mommy daddy grandma grandpa sister brother mother father aunt uncle teacher friend".split()
_SAY = "said asked shouted replied cried yelled whispered exclaimed called answered giggled explained".split()
_TIME = """One day|The next day|Later|After a while|Then|Soon|Suddenly|That night|In the morning|After that|
One sunny day|Every day|The next morning|At the end of the day|One morning|All of a sudden|
That afternoon|Before long""".split("|")
_PP = """ in the park| at home| in the garden| near the big tree| by the river| under the bed| in the sky|
 with her friends| at the beach| in the forest| on the hill| in the kitchen| outside| all day| every day|
 after lunch| before bed| in the yard| behind the house| on the grass| by the pond| in the rain|
 at school| with a big smile| for a long time| again and again| all the way home| to the store|
 in the snow| in the sun| near the lake| at the zoo||||||||""".replace("\n", "").split("|")
_EXCL = """Wow|Oh no|Hi|Hello|Look|Thank you|Yes|No|Yay|Oops|Okay|Hooray|Come on|Please|Oh|Hey|Sorry|
Good morning|Goodbye|Watch out|Help|Stop|Of course|Sure|Bye""".replace("\n", "").split("|")
_UTT = """I'm sorry.|Let's play together!|Can I play too?|Thank you so much!|I love you.|Don't be sad.|
That's not nice.|I can't do it.|You can do it!|We're best friends.|It's okay.|I'm scared.|Let's go!|
Come with me!|Don't worry.|I'll help you.|What is that?|Where are you going?|Can you help me?|
It's so pretty!|I'm hungry.|I want to go home.|Look at me!|This is fun!|Be careful!|I did it!|
You're right.|We'll find it.|I've never seen that before.|She'd like that.|They're coming!|Who are you?|
Why are you sad?|Can we go to the park?|Please share with me.|I'm sorry I was mean.|Let's be friends.|
I don't know.|It's mine!|You've been so kind.|What's wrong?|I'm not scared.|Will you play with me?|
We can share.|It's time for bed.|That was fun!|I'm proud of you.|Don't touch that!|It's a secret.|
Let's try again.|Can I have some?|I'm so happy!|You're my best friend.|Is it yours?|How did you do that?|
It's too big.|I can't find it.|Let's look together.|It's not fair!|Yes, you can.|No, thank you.|
Can you see it?|We did it!|I'll be back soon.|Wait for me!|One, two, three!|Go away!|Sit down, please.|
It's raining!|Happy birthday!|I'm sorry, Mom.|I miss you.|It's my turn.|What a great idea!""".replace(
    "\n", ""
).split("|")
_MORAL = """it is good to share|being kind is important|friends help each other|it is important to listen
to your mom|you should always tell the truth|it is okay to ask for help|sharing makes everyone happy|
hard work pays off|you should never give up|it is good to be careful|being brave is not always easy|
everyone is special|helping others feels good|it is best to say sorry|patience is important|
you should not take things that are not yours|it is fun to try new things|teamwork makes things easier|
being polite is important|it is good to be thankful""".replace("\n", " ").split("|")
_AGE = "two three four five six seven eight 3 4 5 6 7".split()
_COUNT = "ten twenty a hundred 10 20 100 five".split()
_NUMW = [
    "two", "three", "four", "five", "six", "ten", "many", "some", "a few", "lots of", "2", "3", "5", "10"]
_LITTLE = """little small happy kind young sweet curious brave shy big friendly playful lonely silly tiny
smart cheerful gentle old clever""".split()

# Syllable pieces for the generated tail (English-like, with rough frequency order).
_ONSETS = """s t b m p d l r k h f g w n c br st tr pl gr fl cl bl sh ch th sp sl dr cr fr sn sw sm sc sk wh
j v y z qu str spl scr thr""".split() + [""] * 6
_NUCLEI = "a e i o u a e i o a e ea ee oo ai ou ow oa ie y".split()
_CODAS = """n r l s t d m ck ng nd st nt sh th p x ll ss rt mp nk ft lt ld sk rn""".split() + [""] * 10
_ADJ_SUFFIX = ["y", "ful", "ish", "less", "ous", "ly", "ic", "al", "ent", "able", "y", "ed"]
_NOUN_SUFFIX = ["", "", "", "", "er", "le", "et", "on", "ie", "ing", "ness", "ment", "tion", "ery", "ster"]


def _plural(w: str) -> str:
    if w.endswith(("s", "x", "z", "ch", "sh")):
        return w + "es"
    if w.endswith("y") and len(w) > 1 and w[-2] not in "aeiou":
        return w[:-1] + "ies"
    return w + "s"


def _past(w: str) -> str:
    if w.endswith("e"):
        return w + "d"
    if w.endswith("y") and len(w) > 1 and w[-2] not in "aeiou":
        return w[:-1] + "ied"
    if w in _DOUBLING:
        return w + w[-1] + "ed"
    return w + "ed"


def _ing(w: str) -> str:
    if w.endswith("ie"):
        return w[:-2] + "ying"
    if w.endswith("e") and not w.endswith(("ee", "ye", "oe")) and len(w) > 2:
        return w[:-1] + "ing"
    if w in _DOUBLING:
        return w + w[-1] + "ing"
    return w + "ing"


def _article(w: str) -> str:
    lw = w.lower()
    vowel = lw[:1] in ("a", "e", "i", "o", "u")
    if lw.startswith(("uni", "use", "usu", "one", "eu", "uk")):
        vowel = False
    if lw.startswith(("hour", "honest")):
        vowel = True
    return ("an " if vowel else "a ") + w


def _adverb(a: str) -> str:
    if a.endswith("y") and len(a) > 2:
        return a[:-1] + "ily"
    if a.endswith("le"):
        return a[:-1] + "y"
    if a.endswith("ic"):
        return a + "ally"
    return a + "ly"


def _dedupe(words):
    return list(dict.fromkeys(words))  # insertion-ordered; never iterate a set (hash-seed dependent)


def _split_pairs(items: list[str], rule: Callable[[str], str]) -> tuple[list[str], list[str]]:
    base, other = [], []
    for it in _dedupe(items):
        if ":" in it:
            b, o = it.split(":")
        else:
            b, o = it, rule(it)
        base.append(b)
        other.append(o)
    return base, other


class _Lexicon:
    """All strings live in one table; classes hold int index arrays into it, one per inflected form."""

    def __init__(self):
        self.strings: list[str] = []
        self.index: dict[str, int] = {}
        self.classes: dict[str, tuple[_Dist, dict[str, np.ndarray]]] = {}

    def sid(self, s: str) -> int:
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.strings)
            self.strings.append(s)
        return i

    def ids(self, items: list[str]) -> np.ndarray:
        index = self.index
        new = [x for x in dict.fromkeys(items) if x not in index]
        index.update(zip(new, range(len(self.strings), len(self.strings) + len(new))))
        self.strings.extend(new)
        return np.fromiter(map(index.__getitem__, items), dtype=np.int64, count=len(items))

    def add_class(self, name: str, forms: dict[str, list[str]], weights: list[int]) -> None:
        n = len(weights)
        assert all(len(v) == n for v in forms.values()), name
        arrays = {f: v if isinstance(v, np.ndarray) else self.ids(v) for f, v in forms.items()}
        self.classes[name] = (_Dist(weights), arrays)


def _tail_stems(n: int, key: int) -> list[str]:
    """n distinct English-like pseudo-word stems (1-3 syllables), deterministic."""
    ons = _Dist(_zipf(len(_ONSETS), 4))
    nuc = _Dist(_zipf(len(_NUCLEI), 3))
    cod = _Dist(_zipf(len(_CODAS), 5))
    nsyl = _Dist([30, 50, 20])
    m = n + n // 2 + 1000  # oversample, then dedupe
    k = 0
    out: dict[str, None] = {}
    while len(out) < n:
        k += 1
        syl = (nsyl.sample(_u32(_key(key, k, 0), m)) + 1).tolist()
        pieces = []
        for j in range(3):
            o = ons.sample(_u32(_key(key, k, 1, j), m)).tolist()
            v = nuc.sample(_u32(_key(key, k, 2, j), m)).tolist()
            c = cod.sample(_u32(_key(key, k, 3, j), m)).tolist()
            pieces.append((o, v, c))
        (o0, v0, c0), (o1, v1, c1), (o2, v2, c2) = pieces
        O, V, C = _ONSETS, _NUCLEI, _CODAS
        for i in range(m):
            ns = syl[i]
            if ns == 1:
                w = O[o0[i]] + V[v0[i]] + C[c0[i]]
            elif ns == 2:
                w = O[o0[i]] + V[v0[i]] + O[o1[i]] + V[v1[i]] + C[c1[i]]
            else:
                w = O[o0[i]] + V[v0[i]] + O[o1[i]] + V[v1[i]] + O[o2[i]] + V[v2[i]] + C[c2[i]]
            if 3 <= len(w) <= 11:
                out[w] = None
    return list(out)[:n]


def _typo(w: str, u: int) -> str:
    """A plausible misspelling of w chosen by the integer u."""
    if len(w) < 4:
        return w + w[-1]
    i = 1 + u % (len(w) - 2)
    kind = (u >> 8) % 4
    if kind == 0:
        return w[:i] + w[i + 1 :]  # drop a letter
    if kind == 1:
        return w[:i] + w[i] + w[i:]  # double a letter
    if kind == 2:
        return w[:i] + w[i + 1] + w[i] + w[i + 2 :]  # swap two letters
    return w[:i] + "aeiou"[(u >> 12) % 5] + w[i + 1 :]  # wrong vowel/letter


@functools.lru_cache(maxsize=1)
def _lexicon() -> _Lexicon:
    lex = _Lexicon()
    K = 0x5EED  # the lexicon is fixed; only the text's randomness depends on the seed
    n_tail = 40000
    stems = _tail_stems(n_tail * 3, _key(K, 1))
    real = set(_NOUNS) | set(_ADJ) | set(_VT) | set(_VI) | set(_ANIMALS)
    stems = [s for s in stems if s not in real]
    sv = _u32(_key(K, 2), len(stems)).tolist()

    # ----- nouns: core + tail (pseudo-words with noun suffixes, compounds of real nouns, typos) -----
    n_sing, n_plur = _split_pairs(_NOUNS, _plural)
    a_sing, a_plur = _split_pairs(_ANIMALS, _plural)
    t_noun = []
    compounds_u = _u32(_key(K, 3), 2 * n_tail).tolist()
    for i in range(n_tail):
        r = sv[i] % 100
        if r < 62:
            t_noun.append(stems[i] + _NOUN_SUFFIX[(sv[i] >> 8) % len(_NOUN_SUFFIX)])
        elif r < 85:
            a = n_sing[compounds_u[2 * i] % len(n_sing)]
            b = n_sing[compounds_u[2 * i + 1] % len(n_sing)]
            t_noun.append(a + b)  # sandcastle, treehouse, ...
        else:
            t_noun.append(_typo(n_sing[sv[i] % 211 % len(n_sing)], sv[i] >> 7))
    known = set(n_sing) | set(a_sing)
    t_noun = [w for w in _dedupe(t_noun) if w not in known]
    t_plur = [_plural(w) for w in t_noun]
    # A noun-like slot: common nouns (heavy head), animals, then the rare tail.
    all_sing = n_sing + a_sing + t_noun
    all_plur = n_plur + a_plur + t_plur
    w_noun = _mixture([(_zipf(len(n_sing), 8), 680_000), (_zipf(len(a_sing), 4), 250_000),
                       (_tailw(len(t_noun)), 70_000)])
    noun_forms = {"s": lex.ids(all_sing), "p": lex.ids(all_plur), "a": lex.ids([_article(w) for w in all_sing])}
    lex.add_class("N", noun_forms, w_noun)
    # The story's topic noun (TinyStories prompts force one random noun per story): flatter head.
    w_topic = _mixture([(_zipf(len(n_sing), 200), 650_000), (_zipf(len(a_sing), 30), 200_000),
                        (_tailw(len(t_noun)), 150_000)])
    lex.add_class("TN", noun_forms, w_topic)
    an_a = [_article(w) for w in a_sing]
    lex.add_class("ANIMAL", {"s": a_sing, "p": a_plur, "a": an_a}, _zipf(len(a_sing), 3))
    p_sing, p_plur = _split_pairs(_PEOPLE, _plural)
    lex.add_class("PEOPLE", {"s": p_sing, "p": p_plur}, _zipf(len(p_sing), 3))

    # ----- adjectives (+ derived adverbs) -----
    adj = _dedupe(_ADJ)
    t_adj = []
    for i in range(n_tail, 2 * n_tail):
        r = sv[i] % 100
        if r < 70:
            t_adj.append(stems[i] + _ADJ_SUFFIX[(sv[i] >> 8) % len(_ADJ_SUFFIX)])
        elif r < 85:
            t_adj.append(("un" if r < 80 else "super") + adj[(sv[i] >> 9) % len(adj)])
        else:
            t_adj.append(_typo(adj[(sv[i] >> 5) % len(adj)], sv[i] >> 11))
    adj_set = set(adj)
    t_adj = [w for w in _dedupe(t_adj) if w not in adj_set]
    all_adj = adj + t_adj
    w_adj = _mixture([(_zipf(len(adj), 6), 950_000), (_tailw(len(t_adj)), 50_000)])
    adj_forms = {"s": lex.ids(all_adj), "a": lex.ids([_article(w) for w in all_adj])}
    lex.add_class("ADJ", adj_forms, w_adj)
    w_tadj = _mixture([(_zipf(len(adj), 150), 850_000), (_tailw(len(t_adj)), 150_000)])
    lex.add_class("TA", adj_forms, w_tadj)
    little = _dedupe(_LITTLE)
    lex.add_class("LITTLE", {"a": [_article(w) for w in little]}, _zipf(len(little), 1))
    adv = _dedupe(_ADV)
    t_adv = _dedupe(_adverb(w) for w in t_adj[: n_tail // 2])
    lex.add_class("ADV", {"s": adv + t_adv}, _mixture([(_zipf(len(adv), 3), 985_000),
                                                       (_tailw(len(t_adv)), 15_000)]))

    # ----- verbs: base / past / -ing -----
    def verbs(items, tail_from, tail_to):
        base, past = _split_pairs(items, _past)
        tb = [stems[i] for i in range(tail_from, min(tail_to, len(stems)))]
        base_set = set(base)
        tb = [w for w in _dedupe(tb) if w not in base_set]
        b = base + tb
        forms = {"b": lex.ids(b), "d": lex.ids(past + [_past(w) for w in tb]), "g": lex.ids([_ing(w) for w in b])}
        return forms, len(base), len(tb)

    def vweights(n_head, n_tail_, share, head_offset):
        return _mixture([(_zipf(n_head, head_offset), 1_000_000 - share), (_tailw(n_tail_), share)])

    vt, nh, nt = verbs(_VT, 2 * n_tail, 2 * n_tail + n_tail // 2)
    lex.add_class("VT", vt, vweights(nh, nt, 25_000, 6))
    lex.add_class("TV", vt, vweights(nh, nt, 90_000, 150))
    vi, nh, nt = verbs(_VI, 2 * n_tail + n_tail // 2, 3 * n_tail - 2000)
    lex.add_class("VI", vi, vweights(nh, nt, 15_000, 4))

    # ----- names: protagonists by gender, plus rare generated names -----
    t_names = _dedupe(s.capitalize() + ("a" if (sv[i] & 1) else "") for i, s in
                      enumerate(stems[3 * n_tail - 2000:]) if len(s) >= 3)
    half = len(t_names) // 2
    lex.add_class("NAME0", {"s": _GIRL_NAMES + t_names[:half]},
                  _mixture([(_zipf(len(_GIRL_NAMES), 1), 960_000), (_tailw(half), 40_000)]))
    lex.add_class("NAME1", {"s": _BOY_NAMES + t_names[half:]},
                  _mixture([(_zipf(len(_BOY_NAMES), 1), 960_000),
                            (_tailw(len(t_names) - half), 40_000)]))

    # ----- small closed classes -----
    for name, items, off in [("PLACE", _PLACES, 3), ("FOOD", _FOOD, 3), ("FEEL", _FEEL, 2),
                             ("FAM", _FAM, 2), ("SAY", _SAY, 1),
                             ("TIME", _TIME, 2), ("PP", _PP, 6), ("EXCL", _EXCL, 3), ("UTT", _UTT, 6),
                             ("MORAL", _MORAL, 4), ("AGE", _AGE, 3), ("COUNT", _COUNT, 2),
                             ("NUMW", _NUMW, 3), ("INT", _INT, 1)]:
        items = _dedupe(items) if name != "PP" else items  # PP repeats "" on purpose (no phrase)
        lex.add_class(name, {"s": items}, _zipf(len(items), off))
    colors = _dedupe(_COLORS)
    lex.add_class("COLOR", {"s": colors, "a": [_article(c) for c in colors]}, _zipf(len(colors), 3))
    return lex


# ---------------------------------------------------------------------------------------------------
# Templates. {Slot} names: story-level (consistent within a story) or drawn independently per use.
#   Story-level: Name Name2 Pron pron Poss poss obj Kind TN TNS A_TN TA A_TA TV TVD TVG A_LITTLE
#   Independent: N NS A_N ADJ A_ADJ VT VTD VTG VI VID VIG ADV PLACE PP FEEL COLOR FAM SAY TIME EXCL UTT
#                MORAL AGE COUNT NUMW FOOD ANIMAL ANIMALS A_ANIMAL PEOPLE
# Weights: the number after "|" (default 10).
# ---------------------------------------------------------------------------------------------------
_OPEN = r"""
Once upon a time, there was {A_LITTLE} {Kind} named {Name}.|45
Once upon a time there was {A_LITTLE} {Kind} named {Name}.|18
Once upon a time, there was {A_TA} {Kind} called {Name}.|12
Once upon a time, in a {ADJ} {PLACE}, there lived {A_LITTLE} {Kind} named {Name}.|15
Once upon a time, there was {A_LITTLE} {Kind}. {Poss} name was {Name}.|8
Once upon a time, {A_LITTLE} {Kind} named {Name} went to the {PLACE}.|10
One day, {A_LITTLE} {Kind} named {Name} went to the {PLACE} with {poss} {FAM}.|18
One day, {A_LITTLE} {Kind} named {Name} found {A_TN}.|12
{Name} was {A_LITTLE} {Kind} who loved to {VI}.|10
There was once {A_LITTLE} {Kind} named {Name}.|8
{Name} and {poss} {FAM} went to the {PLACE}.|10
One day, {Name} and {Name2} were playing in the {PLACE}.|12
{Name} loved {poss} {TA} {TN}.|8
There was {A_LITTLE} {Kind} named {Name} who lived near the {PLACE}.|8
Once upon a time, there was {A_TA} {TN}.|6
Tom and Sue were best friends.|2
Once upon a time, there was a {ADJ} {ANIMAL} named {Name}. {Pron} lived in a {ADJ} {PLACE}.|6
{Name} had {A_TA} {TN}.|6
"""

_BODY = r"""
{Pron} loved to {VI}{PP}.|20
{Pron} liked to play with {poss} {N}.|12
{Name} was very {FEEL}.|14
{Pron} was so {FEEL}!|8
One day, {pron} saw {A_TA} {TN}.|16
{Pron} wanted to {TV} the {TN}.|16
{Name} {TVD} the {TN}{PP}.|14
{Pron} {VTD} the {ADJ} {N}.|16
{Pron} {VID}{PP}.|14
The {TN} was very {TA}.|14
The {N} was {ADJ} and {ADJ}.|10
{TIME}, {pron} {VTD} {A_ADJ} {N}.|20
{TIME}, {Name} saw {A_ANIMAL}.|10
{TIME}, {Name} went to the {PLACE}.|14
{Name} and {Name2} went to the {PLACE} to {VI}.|10
They {VID} and {VID}{PP}.|10
They played with the {N} all day.|8
They had so much fun!|10
They were very {FEEL}.|10
{Name} said, "{UTT}"|22
{Pron} said, "{EXCL}, {Name2}! {UTT}"|10
"{UTT}" said {Name}.|12
"{EXCL}! {UTT}" {Name} {SAY}.|10
"{EXCL}, {Name}!" said {Name2}. "{UTT}"|10
{Name2} {SAY}, "Can I {VT} your {N}?"|8
"Can I {VT} the {TN} too?" {Name} asked.|8
{Name} asked {poss} {FAM}, "Can we go to the {PLACE}?"|8
{Poss} {FAM} said, "Yes, but be careful."|6
{Poss} {FAM} smiled and said, "{UTT}"|8
"I don't want to {VI}," said {Name}.|6
"Let's {VT} the {TN}!" said {Name2}.|8
"I'm {FEEL}," {pron} said.|8
"Don't be {FEEL}, {Name}," said {poss} {FAM}. "We'll {VT} it together."|6
"Look at the {TA} {TN}!" {Name} {SAY}.|8
"What is that?" asked {Name}. "It's {A_ADJ} {N}," said {Name2}.|6
"Thank you, {Name2}!" said {Name}. "You're the best."|6
"I can't {VT} the {N}," {Name} cried.|5
"We've never seen {A_ADJ} {N} like this before!" they said.|3
{Pron} thought, "{UTT}"|6
{Pron} didn't know what to do.|6
{Pron} couldn't find {poss} {N}.|6
{Pron} wasn't {FEEL} anymore.|5
It's {A_ADJ} day to {VI}, {pron} thought.|3
{Name}'s {FAM} was {FEEL}.|6
{Name} looked at the {TN} and smiled.|10
{Pron} gave the {N} to {Name2}.|8
{Name2} was {ADJ} and {ADJ}.|6
{Pron} had a friend named {Name2}.|8
{Name2} was {A_ADJ} {ANIMAL}.|6
{Pron} saw {A_ADJ} {ANIMAL} in the {PLACE}.|10
The {ANIMAL} was {FEEL}.|8
The {ANIMAL} said, "{UTT}"|8
The {ANIMAL} wanted to {VI} too.|6
{Pron} tried to {VT} the {N}, but it was too {ADJ}.|8
But the {TN} was {ADJ}.|6
Suddenly, {A_ADJ} {N} fell from the sky!|4
Suddenly, the {TN} started to {VI}.|5
Then, something {ADJ} happened.|6
{Name} and {Name2} {VID} together.|8
They {VTD} the {NS} and the {NS}.|6
{Pron} had {NUMW} {NS} and {NUMW} {NS}.|5
{Pron} counted to {COUNT}.|2
{Name} was {AGE} years old.|3
There were {NUMW} {ADJ} {NS} in the {PLACE}.|5
{Pron} put the {TN} in {poss} {N}.|8
{Pron} {ADV} {VTD} the {N}.|8
{Pron} ran to {poss} {FAM} and {VTD} {obj}.|4
{Poss} {FAM} gave {obj} {A_N}.|6
{Pron} {TVD} it {ADV}.|8
{Pron} was {TVG} the {TN} when {pron} saw {A_ANIMAL}.|6
{Pron} kept {VIG}{PP}.|5
{Pron} liked {VIG} with {Name2}.|6
{VIG} was {poss} favorite thing to do.|4
The {N} was {COLOR} and {ADJ}.|8
{Pron} had {A_COLOR} {N} and {A_ADJ} {N}.|6
They ate {FOOD} and drank juice.|5
{Pron} ate some {FOOD}. It was yummy!|5
{Name} felt {FEEL} and {FEEL}.|6
{Name}'s {N} was {ADJ}.|6
{Name2} helped {obj} {VT} the {TN}.|8
{Pron} learned how to {TV} the {TN}.|6
The {PEOPLE} {VID}{PP}.|5
{Name} did not like the {N}.|5
It was {ADJ}, but {pron} didn't care.|4
{Pron} looked everywhere for the {N}.|5
{Pron} looked under the {N} and behind the {N}.|4
Where could it be?|4
What would {pron} do now?|3
{Name} had an idea.|6
{Pron} ran {ADV} to the {PLACE}.|8
{Pron} {VID} and {VID} until {pron} was tired.|5
The sun was shining and the birds were singing.|5
It was a {ADJ} day.|8
The {TA} {TN} made {obj} {FEEL}.|6
Everyone {VID} and {VID}.|4
{Name} shared {poss} {N} with {Name2}.|6
{Name2} {VTD} the {N} and {VID} away.|5
They found {A_TA} {TN} in the {PLACE}.|6
{Pron} showed the {TN} to {poss} {FAM}.|6
{Pron} hugged {Name2} and said, "Thank you!"|5
{Pron} said sorry to {Name2}.|4
It was time to go home.|5
At home, {pron} told {poss} {FAM} about the {TN}.|5
"{UTT}" {pron} asked.|6
"{EXCL}!" {Name} shouted.|6
The {N} was {INT} {ADJ}.|5
The {TN} {VID}{PP}.|5
{Pron} {VID} with the {ANIMALS}.|4
{Name2} was a {ADJ} {ANIMAL} who lived in the {PLACE}.|5
"I'm {TVG} the {TN}," said {Name}.|4
"It's okay," said {Name2}. "We can {VT} {A_N}."|4
{Pron} didn't want to {TV} the {TN}.|5
"I'll {VT} it," {pron} said.|4
They're {ADJ} {NS}, {pron} thought.|2
"You've {VTD} my {N}!" {Name2} {SAY}.|3
"I'd like {A_N}, please," said {Name}.|3
{Pron}'d never seen {A_ADJ} {N} before.|4
They couldn't believe it!|4
{Name} {VID}, {VID}, and {VID}.|3
"Can you {VT} me?" asked the {ANIMAL}.|4
{Pron} {VTD} {A_ADJ} {N} with {poss} {N}.|6
{Pron} {VID}{PP} because {pron} wanted to find the {TN}.|8
{Name} was {VIG}{PP} when {pron} came across {A_TA} {TN}.|10
When {Name} saw the {TN}, {pron} was so {FEEL} that {pron} {VID}.|8
{Pron} wanted to show the {TN} to all of {poss} friends, so {pron} {VID} to the {PLACE}.|6
{Name} and {Name2} looked at the {TN} for a long time, and then they {VID} together.|6
{Pron} knew that the {TN} was very special, so {pron} kept it in a safe place.|6
Every day, {Name} would go to the {PLACE} and {VT} the {ADJ} {NS}.|8
{Name} did not know what the {TN} was, but {pron} wanted to find out.|6
{Pron} picked up the {TN} and ran to show {poss} {FAM}.|8
{Poss} {FAM} looked at the {TN} and said, "{UTT}"|8
The {ANIMAL} was {ADJ} and {ADJ}, and it liked to {VI}{PP}.|6
{Name} thought about it for a moment and then said, "{UTT}"|6
They {VID} and {VID} until the sun went down.|6
{Name} wanted to help, so {pron} {VTD} the {N} and gave it to {Name2}.|6
It was not easy, but {Name} did not give up.|6
{Pron} tried again and again, and at last {pron} {TVD} the {TN}.|6
{Name} felt a little {FEEL}, but {pron} was also very {FEEL}.|6
{Name2} saw that {Name} was {FEEL} and asked, "What's wrong?"|6
{Name} told {Name2} about the {TN}, and {Name2} said, "{UTT}"|6
The {PEOPLE} smiled and told {Name} that {MORAL}.|4
{Pron} didn't want to share the {TN} with anyone, but then {pron} saw that {Name2} was {FEEL}.|5
So {Name} and {Name2} {VTD} the {TN} together, and they both felt {FEEL}.|6
The {TN} was {TA} and {ADJ}, and {Name} loved it very much.|6
{Pron} was walking in the {PLACE} when {pron} heard a {ADJ} noise.|6
{Pron} looked around and saw {A_ADJ} {ANIMAL} under a {N}.|6
"Hello, {ANIMAL}," said {Name}. "Do you want to {VI} with me?"|6
The {ANIMAL} nodded and they {VID} together{PP}.|6
{Name} and {poss} {FAM} went to the {PLACE} to {VT} some {NS}.|6
On the way, they saw {A_ADJ} {N} and {A_ADJ} {N}.|5
{Name} asked if {pron} could {VT} the {N}, and {poss} {FAM} said yes.|6
After a while, {Name} got tired and sat down under a big tree.|5
Just then, {A_ADJ} {ANIMAL} came and {VID} next to {obj}.|5
{Name} laughed and said, "You are so {ADJ}!"|6
They played a game with the {N}, and {Name} won.|4
{Name} was {ADJ}, and {pron} always wanted to {VT} new things.|5
{Pron} had {A_TA} {TN} that {pron} loved more than anything.|6
One day, the {TN} was gone, and {Name} was very {FEEL}.|6
{Pron} looked in the {PLACE}, under the bed, and in the {N}, but {pron} could not find it.|5
{Name}'s {FAM} helped {obj} look, and soon they found the {TN}{PP}.|5
{Name} was so happy that {pron} gave {poss} {FAM} a big hug.|6
{Pron} promised to always take care of {poss} {TN}.|4
The {TN} was too high, so {Name} asked {Name2} for help.|5
{Name2} was tall, and {pron} could reach it easily.|2
"""

_END = r"""
From that day on, {Name} and {Name2} were best friends.|16
They all lived happily ever after.|8
{Name} learned that {MORAL}.|14
{Pron} learned that {MORAL}.|8
The end.|4
{Name} was very happy.|12
{Pron} smiled and went to sleep.|6
{Name} and {Name2} played together all day long.|10
{Pron} loved {poss} {TA} {TN} very much.|10
And that's how {Name} found {A_TA} {TN}.|4
From then on, {Name} always {TVD} the {TN} {ADV}.|6
They were all very happy.|8
{Name} hugged {poss} {FAM} and said, "Thank you!"|6
They had lots of fun together.|8
{Name} never forgot the {TA} {TN}.|5
{Pron} couldn't wait to {VI} again tomorrow.|6
"""


def _parse_templates(src: str) -> list[tuple[str, int]]:
    out = []
    for line in src.strip().splitlines():
        line = line.rstrip()
        if not line:
            continue
        text, _, w = line.rpartition("|")
        out.append((text, int(w)) if text else (line, 10))
    return out


_SLOT_RE = re.compile(r"\{(\w+)\}")
# slot name -> (class, form) for independently drawn slots
_IID = {
    "N": ("N", "s"), "NS": ("N", "p"), "A_N": ("N", "a"), "ADJ": ("ADJ", "s"), "A_ADJ": ("ADJ", "a"),
    "VT": ("VT", "b"), "VTD": ("VT", "d"), "VTG": ("VT", "g"), "VI": ("VI", "b"), "VID": ("VI", "d"),
    "VIG": ("VI", "g"), "ADV": ("ADV", "s"), "INT": ("INT", "s"), "PLACE": ("PLACE", "s"), "PP": ("PP", "s"),
    "FEEL": ("FEEL", "s"), "COLOR": ("COLOR", "s"), "FAM": ("FAM", "s"), "SAY": ("SAY", "s"),
    "TIME": ("TIME", "s"), "EXCL": ("EXCL", "s"), "UTT": ("UTT", "s"), "MORAL": ("MORAL", "s"),
    "AGE": ("AGE", "s"), "COUNT": ("COUNT", "s"), "NUMW": ("NUMW", "s"), "FOOD": ("FOOD", "s"),
    "ANIMAL": ("ANIMAL", "s"), "ANIMALS": ("ANIMAL", "p"), "A_ANIMAL": ("ANIMAL", "a"),
    "PEOPLE": ("PEOPLE", "s"),
}
_STORY = ["Name", "Name2", "Pron", "pron", "Poss", "poss", "obj", "Kind", "TN", "TNS", "A_TN", "TA",
          "A_TA", "TV", "TVD", "TVG", "A_LITTLE", "A_COLOR"]
_SLOTS = list(_IID) + _STORY + ["SEP"]
_SLOT_CODE = {name: -(i + 1) for i, name in enumerate(_SLOTS)}


@functools.lru_cache(maxsize=1)
def _grammar():
    lex = _lexicon()
    groups = []
    for src in (_OPEN, _BODY, _END):
        codes_list, weights = [], []
        for text, w in _parse_templates(src):
            codes = []
            pieces = _SLOT_RE.split(text)
            for j, p in enumerate(pieces):
                if j % 2 == 0:
                    if p:
                        codes.append(lex.sid(p))
                else:
                    if p not in _SLOT_CODE:
                        raise ValueError(f"unknown slot {{{p}}} in template {text!r}")
                    codes.append(_SLOT_CODE[p])
            codes.append(_SLOT_CODE["SEP"])
            codes_list.append(codes)
            weights.append(w)
        groups.append((codes_list, _Dist(weights)))
    # one flat code table for all templates: group g template t -> global id
    flat, starts, lens, gbase = [], [], [], []
    for codes_list, _ in groups:
        gbase.append(len(starts))
        for c in codes_list:
            starts.append(len(flat))
            lens.append(len(c))
            flat.extend(c)
    fixed = {s: lex.sid(s) for s in ["", " ", "\n", "She", "He", "she", "he", "Her", "His", "her", "his",
                                     "him", "girl", "boy"]}
    return {
        "codes": np.asarray(flat, dtype=np.int64),
        "starts": np.asarray(starts, dtype=np.int64),
        "lens": np.asarray(lens, dtype=np.int64),
        "gbase": gbase,
        "gdist": [g[1] for g in groups],
        "fixed": fixed,
        "strings": np.asarray(lex.strings, dtype=object),
    }


def _block(seed: int, block: int) -> list[str]:
    """The stories of one block: a pure function of (seed, block)."""
    lex = _lexicon()
    g = _grammar()
    S = _STORIES_PER_BLOCK
    C = lex.classes
    fx = g["fixed"]
    ctr = iter(range(1, 1 << 20))

    def u(n: int) -> np.ndarray:
        return _u32(_key(seed, block, next(ctr)), n)

    def draw(cls: str, n: int) -> np.ndarray:
        return C[cls][0].sample(u(n))

    # ----- per-story state -----
    gender = (u(S) & np.uint64(1)).astype(np.int64)  # 0 girl, 1 boy
    name = np.where(gender == 0, C["NAME0"][1]["s"][draw("NAME0", S)], C["NAME1"][1]["s"][draw("NAME1", S)])
    g2 = (u(S) & np.uint64(1)).astype(np.int64)
    name2 = np.where(g2 == 0, C["NAME0"][1]["s"][draw("NAME0", S)], C["NAME1"][1]["s"][draw("NAME1", S)])
    same = name2 == name  # a friend with the protagonist's name: take the next common name instead
    name2 = np.where(same, np.where(g2 == 0, C["NAME0"][1]["s"][1], C["NAME1"][1]["s"][1]), name2)
    is_animal = u(S) < np.uint64(int(0.25 * (1 << 32)))
    kind = np.where(is_animal, C["ANIMAL"][1]["s"][draw("ANIMAL", S)],
                    np.where(gender == 0, fx["girl"], fx["boy"]))
    tn = draw("TN", S)
    ta = draw("TA", S)
    tv = draw("TV", S)
    little = draw("LITTLE", S)
    color = draw("COLOR", S)
    story_val = {
        "Name": name, "Name2": name2, "Kind": kind,
        "Pron": np.where(gender == 0, fx["She"], fx["He"]), "pron": np.where(gender == 0, fx["she"], fx["he"]),
        "Poss": np.where(gender == 0, fx["Her"], fx["His"]), "poss": np.where(gender == 0, fx["her"], fx["his"]),
        "obj": np.where(gender == 0, fx["her"], fx["him"]),
        "TN": C["TN"][1]["s"][tn], "TNS": C["TN"][1]["p"][tn], "A_TN": C["TN"][1]["a"][tn],
        "TA": C["TA"][1]["s"][ta], "A_TA": C["TA"][1]["a"][ta],
        "TV": C["TV"][1]["b"][tv], "TVD": C["TV"][1]["d"][tv], "TVG": C["TV"][1]["g"][tv],
        "A_LITTLE": C["LITTLE"][1]["a"][little],
        "A_COLOR": C["COLOR"][1]["a"][color],
    }

    # ----- sentences: OPEN, BODY..., END (or BODY) -----
    n_sent = (8 + (u(S) % np.uint64(8)) + (u(S) % np.uint64(8)) + (u(S) % np.uint64(7))).astype(np.int64)
    total = int(n_sent.sum())
    first = np.zeros(total, dtype=bool)
    ends = np.cumsum(n_sent)
    first[ends - n_sent] = True
    last = np.zeros(total, dtype=bool)
    last[ends - 1] = True
    end_kind = last & (u(total) < np.uint64(int(0.7 * (1 << 32))))
    gd = g["gdist"]
    gb = g["gbase"]
    tmpl = gd[1].sample(u(total)) + gb[1]
    tmpl = np.where(first, gd[0].sample(u(total)) + gb[0], tmpl)
    tmpl = np.where(end_kind & ~first, gd[2].sample(u(total)) + gb[2], tmpl)
    sent_story = np.repeat(np.arange(S, dtype=np.int64), n_sent)

    # ----- expand templates into one code array -----
    lens = g["lens"][tmpl]
    out_ends = np.cumsum(lens)
    n_codes = int(out_ends[-1])
    pos_in = np.arange(n_codes, dtype=np.int64) - np.repeat(out_ends - lens, lens)
    codes = g["codes"][np.repeat(g["starts"][tmpl], lens) + pos_in]
    code_story = np.repeat(sent_story, lens)

    # separators: paragraph break or space between sentences; nothing after the last one
    para = u(total) < np.uint64(int(0.2 * (1 << 32)))
    sep = np.where(last, fx[""], np.where(para, fx["\n"], fx[" "]))
    codes[out_ends - 1] = sep

    # fill slots: group the slot positions by slot code with one stable sort
    where_all = np.flatnonzero(codes < 0)
    order = np.argsort(codes[where_all], kind="stable")
    where_all = where_all[order]
    slot_codes, first_at, counts = np.unique(codes[where_all], return_index=True, return_counts=True)
    for sc, a0, cnt in zip(slot_codes.tolist(), first_at.tolist(), counts.tolist()):
        name_ = _SLOTS[-sc - 1]
        where = where_all[a0 : a0 + cnt]
        if name_ in story_val:
            codes[where] = story_val[name_][code_story[where]]
        else:
            cls, form = _IID[name_]
            codes[where] = C[cls][1][form][C[cls][0].sample(_u32(_key(seed, block, 1000 + (-sc)), cnt))]

    # ----- to strings -----
    strs = g["strings"][codes].tolist()
    story_ends = out_ends[ends - 1].tolist()
    curly = u(S) < np.uint64(int(0.15 * (1 << 32)))
    curly_apos = u(S) < np.uint64(int(0.03 * (1 << 32)))
    blank = u(S) < np.uint64(int(0.08 * (1 << 32)))
    docs = []
    a = 0
    for s in range(S):
        b = story_ends[s]
        doc = "".join(strs[a:b])
        a = b
        if curly[s]:
            parts = doc.split('"')
            doc = parts[0] + "".join(("\u201c" if i % 2 else "\u201d") + p for i, p in enumerate(parts[1:], 1))
        if curly_apos[s]:
            doc = doc.replace("'", "\u2019")
        if blank[s]:
            doc = "\n" + doc
        docs.append(doc)
    return docs


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return int(seed) & _M64


def iter_documents(seed: int = 0) -> Iterator[str]:
    """Endless stream of stories (without the ``<|endoftext|>`` separator). Deterministic in ``seed``."""
    seed = _check_seed(seed)
    block = 0
    while True:
        yield from _block(seed, block)
        block += 1


def _iter_chunks(n_bytes: int, seed: int) -> Iterator[bytes]:
    """UTF-8 blocks of the corpus: whole stories, each followed by DOC_SEPARATOR, stopping at the first
    story boundary at or after n_bytes."""
    if isinstance(n_bytes, bool) or not isinstance(n_bytes, (int, np.integer)) or n_bytes < 0:
        raise ValueError(f"n_bytes must be a non-negative int, got {n_bytes!r}")
    seed = _check_seed(seed)
    done = 0
    block = 0
    while done < n_bytes:
        docs = _block(seed, block)
        block += 1
        data = "".join(d + DOC_SEPARATOR for d in docs).encode("utf-8")
        if done + len(data) <= n_bytes:
            done += len(data)
            yield data
            continue
        parts = []
        for d in docs:
            b = (d + DOC_SEPARATOR).encode("utf-8")
            parts.append(b)
            done += len(b)
            if done >= n_bytes:
                break
        yield b"".join(parts)


def generate_text(n_bytes: int, seed: int = 0) -> str:
    """About ``n_bytes`` of UTF-8 text (whole stories; at most one story more than ``n_bytes``)."""
    return b"".join(_iter_chunks(n_bytes, seed)).decode("utf-8")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_corpus(path, n_bytes: int, seed: int = 0, progress: bool = False) -> int:
    """Write ``generate_text(n_bytes, seed)`` to ``path``, streaming, atomically. Returns bytes written.

    The data goes to a temporary file in the same directory, which replaces ``path`` only when complete;
    on any error or KeyboardInterrupt the temporary file is removed and ``path`` is left untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=n_bytes, unit="B", unit_scale=True, desc=os.path.basename(path))
        except ImportError:  # pragma: no cover - tqdm is a package dependency
            bar = None
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    written = 0
    try:
        with os.fdopen(fd, "wb") as f:
            buf: list[bytes] = []
            size = 0
            for chunk in _iter_chunks(n_bytes, seed):
                buf.append(chunk)
                size += len(chunk)
                if size >= 8 << 20:
                    f.write(b"".join(buf))
                    written += size
                    if bar is not None:
                        bar.update(min(size, bar.total - bar.n))
                    buf, size = [], 0
            if buf:
                f.write(b"".join(buf))
                written += size
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
        if bar is not None:
            bar.update(bar.total - bar.n)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        if bar is not None:
            bar.close()
    return written
