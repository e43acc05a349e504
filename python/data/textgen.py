"""Random sentence generator for espeak-ng, in many languages and scripts.

English uses real words (/usr/share/dict/words when present, else a built-in list);
a handful of major languages get small built-in word lists mixed with pseudo-words;
every other language gets pseudo-words built from syllables in its own script, which
espeak-ng pronounces with that language's letter-to-sound rules. Numbers are spelled
out by espeak-ng in each language, which adds real vocabulary for free.

Words are split into a train and an eval half by a stable hash, so the held-out set
never sees the training vocabulary.
"""
from __future__ import annotations

import os
import zlib
from typing import Dict, List, Sequence

import numpy as np

# --------------------------------------------------------------------------- word lists
_EN_FALLBACK = """time year people way day man thing woman life child world school state family
student group country problem hand part place case week company system program question work
government number night point home water room mother area money story fact month lot right study
book eye job word business issue side kind head house service friend father power hour game line
end member law car city community name president team minute idea kid body information back parent
face others level office door health person art war history party result change morning reason
research girl guy moment air teacher force education foot boy age policy music river garden window
bring carry open close run walk speak listen write read build break hold follow begin seem help show
hear play move live believe happen sit stand lose pay meet include continue set learn lead understand
watch create spend grow offer remember love consider appear buy wait serve die send expect stay fall
cut reach kill remain suggest raise pass sell require report decide pull green quiet bright heavy
small large young old early late simple strong certain clear recent possible free real whole human
local social public special similar hot cold dark light short long high low new good great big""".split()

FUNCTION_WORDS = {
    "en": "the a an of and to in is was for on with as at by from that this it not but or be are have".split(),
    "de": "der die das und ist nicht ein eine zu mit auf den dem von im es sie wir ich auch aber".split(),
    "fr": "le la les et est un une de du des pas que qui dans pour sur avec il elle nous je mais".split(),
    "es": "el la los las y es un una de del que en por con para no se lo su pero muy".split(),
    "it": "il la lo gli le e un una di del che non per con su ma si io noi molto".split(),
    "pt": "o a os as e um uma de do da que em para com por nao se eu mas muito".split(),
    "nl": "de het een en is van in op met niet dat die voor maar ook wij ik zijn".split(),
    "pl": "i w na nie z do to jest sie ze jak ale po tak od juz tylko".split(),
    "sv": "och att det som en ett i pa ar av for med inte den jag men har".split(),
}

CONTENT_WORDS = {
    "de": """Haus Wasser Stadt Zeit Kind Frau Mann Hund Katze Baum Himmel Sonne Garten Freund Schule Arbeit
    Strasse Buch Wetter Abend Morgen Fenster Tisch Reise Musik Farbe schnell langsam gross klein schoen
    gehen kommen sehen machen sagen lernen spielen fahren denken lachen trinken essen""".split(),
    "fr": """maison eau ville temps enfant femme homme chien chat arbre ciel soleil jardin ami ecole travail
    rue livre matin soir fenetre table voyage musique couleur rapide lent grand petit beau aller venir
    voir faire dire apprendre jouer penser rire boire manger chanter""".split(),
    "es": """casa agua ciudad tiempo nino mujer hombre perro gato arbol cielo sol jardin amigo escuela trabajo
    calle libro manana noche ventana mesa viaje musica color rapido lento grande pequeno bonito ir venir
    ver hacer decir aprender jugar pensar reir beber comer cantar""".split(),
    "it": """casa acqua citta tempo bambino donna uomo cane gatto albero cielo sole giardino amico scuola lavoro
    strada libro mattina sera finestra tavolo viaggio musica colore veloce lento grande piccolo bello andare
    venire vedere fare dire imparare giocare pensare ridere bere mangiare cantare""".split(),
    "pt": """casa agua cidade tempo menino mulher homem cachorro gato arvore ceu sol jardim amigo escola trabalho
    rua livro manha noite janela mesa viagem musica cor rapido lento grande pequeno bonito ir vir ver
    fazer dizer aprender jogar pensar rir beber comer cantar""".split(),
    "nl": """huis water stad tijd kind vrouw man hond kat boom hemel zon tuin vriend school werk straat boek
    morgen avond raam tafel reis muziek kleur snel langzaam groot klein mooi gaan komen zien maken zeggen
    leren spelen denken lachen drinken eten zingen""".split(),
    "pl": """dom woda miasto czas dziecko kobieta mezczyzna pies kot drzewo niebo slonce ogrod przyjaciel szkola
    praca ulica ksiazka rano wieczor okno stol podroz muzyka kolor szybko wolno duzy maly piekny isc
    widziec robic mowic uczyc grac myslec smiac pic jesc spiewac""".split(),
    "sv": """hus vatten stad tid barn kvinna man hund katt trad himmel sol tradgard van skola arbete gata bok
    morgon kvall fonster bord resa musik farg snabb langsam stor liten vacker ga komma se gora saga lara
    spela tanka skratta dricka ata sjunga""".split(),
}

# --------------------------------------------------------------------------- syllable inventories
_LATIN_GENERIC = (list("bcdfghjklmnprstvz") + ["ch", "sh", "th", "tr", "pr", "st", "gr", "br"],
                  list("aeiou") + ["ai", "ei", "ou", "ia"], list("nlrstmk") + [""] * 6)
LATIN_EXTRA = {  # (extra onsets, extra vowels)
    "de": (["sch", "pf", "z", "kn"], ["ä", "ö", "ü", "ie", "au", "eu"]),
    "fr": (["qu", "gn", "ch"], ["é", "è", "eau", "oi", "ou", "an", "on", "un"]),
    "es": (["ll", "ñ", "rr", "qu"], ["á", "é", "í", "ó", "ú", "ue", "ie"]),
    "pt": (["lh", "nh", "ç"], ["ã", "õ", "ão", "é", "ê"]),
    "pl": (["sz", "cz", "rz", "dz", "ł", "ś", "ż"], ["ą", "ę", "ó", "y"]),
    "cs": (["č", "ř", "š", "ž", "ch"], ["á", "é", "í", "ů", "ý", "ě"]),
    "sk": (["č", "š", "ž", "dž"], ["á", "é", "ô", "ä", "ý"]),
    "hu": (["sz", "cs", "gy", "ny", "zs"], ["á", "é", "ő", "ű", "ö", "ü"]),
    "tr": (["ç", "ş", "ğ"], ["ı", "ö", "ü"]),
    "fi": (["ll", "kk", "tt"], ["ä", "ö", "aa", "ii", "uu", "y"]),
    "et": (["kk", "pp"], ["õ", "ä", "ö", "ü"]),
    "sv": (["sj", "tj", "kj"], ["å", "ä", "ö", "y"]),
    "nb": (["kj", "sj"], ["å", "æ", "ø", "y"]),
    "da": (["sj"], ["å", "æ", "ø", "y"]),
    "is": (["þ", "ð", "hv"], ["á", "ó", "ú", "æ", "ö"]),
    "ro": (["ș", "ț"], ["ă", "â", "î"]),
    "vi": (["ng", "nh", "đ", "ph"], ["ă", "â", "ê", "ô", "ơ", "ư", "à", "á", "ả", "ã", "ạ"]),
    "lt": (["š", "ž", "č"], ["ą", "ę", "ė", "į", "ų", "ū"]),
    "lv": (["š", "ž", "č", "ķ"], ["ā", "ē", "ī", "ū"]),
    "hr": (["č", "ć", "š", "ž", "dž"], []),
    "sl": (["č", "š", "ž"], []),
    "cy": (["ll", "dd", "ff", "rh"], ["w", "y"]),
    "ga": (["bh", "mh", "ch"], ["á", "é", "í", "ó", "ú"]),
    "eo": (["ĉ", "ĝ", "ŝ", "ĵ"], ["aŭ", "oj"]),
    "it": (["gl", "gn", "sc"], ["à", "è", "ò"]),
    "nl": (["sch", "ij"], ["oe", "ui", "ij", "aa", "ee"]),
    "sq": (["ç", "sh", "xh", "gj"], ["ë"]),
    "mt": (["ċ", "ġ", "ħ", "ż"], ["ie"]),
    "af": (["sk", "gr"], ["ê", "ë", "ie", "oe"]),
}
LATIN_LANGS = ["af", "an", "ca", "cs", "cy", "da", "de", "eo", "es", "es-419", "et", "eu", "fi", "fr-fr", "fr-be",
               "ga", "gd", "hr", "ht", "hu", "ia", "id", "io", "is", "it", "la", "lb", "lfn", "lt", "lv", "mi",
               "ms", "mt", "nb", "nl", "pap", "pl", "pt", "pt-br", "qu", "ro", "sk", "sl", "sq", "sv", "sw", "tn",
               "tr", "uz", "vi", "tk", "haw", "smj", "om", "az", "bs", "jbo", "gn", "py", "quc"]
CYRILLIC = (list("бвгджзклмнпрстфхцчшщ"), list("аеиоуыэюяё"), list("нлрстмкйвх") + [""] * 6)
CYRILLIC_LANGS = ["ru", "uk", "bg", "mk", "sr", "be", "kk", "ky", "tt", "ba", "cv", "ru-lv"]
GREEK = (list("βγδζθκλμνξπρστφχψ"), list("αεηιουω") + ["ά", "έ", "ί", "ό", "ύ", "ή", "ώ", "αι", "ου"],
         list("νσρ") + [""] * 6)
GREEK_LANGS = ["el", "grc"]
DEVANAGARI_C = list("कखगघचछजझटठडढतथदधनपफबभमयरलवशसह")
DEVANAGARI_V = ["", "ा", "ि", "ी", "ु", "ू", "े", "ै", "ो", "ौ"]
DEVANAGARI_LANGS = ["hi", "mr", "ne"]
HIRAGANA = list("あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわん"
                "がぎぐげござじずぜぞだでどばびぶべぼぱぴぷぺぽ")
HANZI = list("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可"
             "她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三"
             "已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定"
             "女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加")
PINYIN_I = ["b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "zh", "ch", "sh", "r", "z", "c",
            "s", ""]
PINYIN_F = ["a", "o", "e", "ai", "ei", "ao", "ou", "an", "en", "ang", "eng", "ong", "i", "u", "ia", "ie", "iao",
            "ian", "in", "ing", "uo", "uai", "ui", "uan", "un"]
ARABIC_LETTERS = list("ابتثجحخدذرزسشصضطظعغفقكلمنهوي")
ARABIC_LANGS = ["ar", "fa", "ur"]
HEBREW_LETTERS = list("אבגדהוזחטיכלמנסעפצקרשת")


def _hangul(rng) -> str:
    n = int(rng.integers(1, 4))
    return "".join(chr(0xAC00 + (int(rng.integers(19)) * 21 + int(rng.integers(21))) * 28 +
                       (int(rng.integers(28)) if rng.random() < 0.4 else 0)) for _ in range(n))


def script_of(lang: str) -> str:
    base = lang.split("-")[0]
    if lang in CYRILLIC_LANGS:
        return "cyrillic"
    if lang in GREEK_LANGS:
        return "greek"
    if lang in DEVANAGARI_LANGS:
        return "devanagari"
    if base == "ja":
        return "kana"
    if lang == "cmn-latn-pinyin":
        return "pinyin"
    if base in ("cmn", "yue", "hak"):
        return "hanzi"
    if base == "ko":
        return "hangul"
    if lang in ARABIC_LANGS:
        return "arabic"
    if base == "he":
        return "hebrew"
    if base == "en":
        return "english"
    return "latin"


SUPPORTED_LANGS = (["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
                    "en-gb-x-gbcwmd"] + LATIN_LANGS + CYRILLIC_LANGS + GREEK_LANGS + DEVANAGARI_LANGS +
                   ["ja", "cmn", "cmn-latn-pinyin", "yue", "ko"] + ARABIC_LANGS + ["he"])


def _stable_half(word: str, eval_split: bool, eval_every: int = 8) -> bool:
    """True if the word belongs to the requested half (eval gets 1 in eval_every)."""
    h = zlib.crc32(word.encode("utf-8")) % eval_every
    return (h == 0) == eval_split


class SentenceGenerator:
    def __init__(self, eval_split: bool = False, dict_path: str = "/usr/share/dict/words"):
        self.eval_split = eval_split
        words = None
        if os.path.exists(dict_path):
            with open(dict_path, encoding="utf-8", errors="ignore") as f:
                words = [w.strip() for w in f]
            words = [w for w in words if w.isascii() and w.isalpha() and w.islower() and 2 <= len(w) <= 11]
        if not words:
            words = list(_EN_FALLBACK)
        self.en_words = [w for w in words if _stable_half(w, eval_split)]
        # the common fallback words always help; split them too
        self.en_common = [w for w in _EN_FALLBACK if _stable_half(w, eval_split, 4)]
        self.content = {k: [w for w in v if _stable_half(w, eval_split, 4)] for k, v in CONTENT_WORDS.items()}

    # ------------------------------------------------------------------ words
    def _syllable(self, rng, onsets, vowels, codas) -> str:
        s = ""
        if rng.random() < 0.85:
            s += onsets[int(rng.integers(len(onsets)))]
        s += vowels[int(rng.integers(len(vowels)))]
        s += codas[int(rng.integers(len(codas)))]
        return s

    def pseudo_word(self, rng, lang: str) -> str:
        sc = script_of(lang)
        n = int(rng.choice([1, 1, 2, 2, 2, 3, 3, 4]))
        base = lang.split("-")[0]
        if sc == "latin":
            on, vo, co = _LATIN_GENERIC
            ex = LATIN_EXTRA.get(base)
            if ex:
                on = on + ex[0] * 2
                vo = vo + ex[1] * 2
            return "".join(self._syllable(rng, on, vo, co) for _ in range(n))
        if sc == "english":
            return self.en_words[int(rng.integers(len(self.en_words)))]
        if sc == "cyrillic":
            return "".join(self._syllable(rng, *CYRILLIC) for _ in range(n))
        if sc == "greek":
            return "".join(self._syllable(rng, *GREEK) for _ in range(n))
        if sc == "devanagari":
            return "".join(DEVANAGARI_C[int(rng.integers(len(DEVANAGARI_C)))] +
                           DEVANAGARI_V[int(rng.integers(len(DEVANAGARI_V)))] for _ in range(n))
        if sc == "kana":
            return "".join(HIRAGANA[int(rng.integers(len(HIRAGANA)))] for _ in range(n + 1))
        if sc == "hanzi":
            return "".join(HANZI[int(rng.integers(len(HANZI)))] for _ in range(n))
        if sc == "pinyin":
            return " ".join(PINYIN_I[int(rng.integers(len(PINYIN_I)))] + PINYIN_F[int(rng.integers(len(PINYIN_F)))]
                            + str(int(rng.integers(1, 5))) for _ in range(n))
        if sc == "hangul":
            return _hangul(rng)
        if sc == "arabic":
            return "".join(ARABIC_LETTERS[int(rng.integers(len(ARABIC_LETTERS)))] for _ in range(n + 2))
        if sc == "hebrew":
            return "".join(HEBREW_LETTERS[int(rng.integers(len(HEBREW_LETTERS)))] for _ in range(n + 2))
        raise ValueError(sc)

    def word(self, rng, lang: str) -> str:
        base = lang.split("-")[0]
        r = rng.random()
        if r < 0.05:  # a number, spelled out by espeak-ng in the voice's language
            return str(int(rng.choice([rng.integers(0, 20), rng.integers(20, 1000), rng.integers(1000, 100000)])))
        if base == "en":
            if r < 0.35:
                return FUNCTION_WORDS["en"][int(rng.integers(len(FUNCTION_WORDS["en"])))]
            if r < 0.55:
                return self.en_common[int(rng.integers(len(self.en_common)))]
            return self.en_words[int(rng.integers(len(self.en_words)))]
        if base in FUNCTION_WORDS and r < 0.3:
            fw = FUNCTION_WORDS[base]
            return fw[int(rng.integers(len(fw)))]
        if base in self.content and r < 0.6:
            cw = self.content[base]
            return cw[int(rng.integers(len(cw)))]
        return self.pseudo_word(rng, lang)

    # ------------------------------------------------------------------ sentences
    def sentence(self, rng, lang: str) -> str:
        n = int(rng.integers(3, 15))
        words = [self.word(rng, lang) for _ in range(n)]
        sc = script_of(lang)
        out: List[str] = []
        for i, w in enumerate(words):
            out.append(w)
            if 0 < i < n - 1 and rng.random() < 0.1:
                out[-1] += "，" if sc == "hanzi" else ("、" if sc == "kana" else ",")
        s = " ".join(out) if sc not in ("kana", "hanzi") else "".join(out)
        if sc in ("latin", "english", "cyrillic", "greek") and s[:1].isalpha():
            s = s[0].upper() + s[1:]
        end = rng.choice([".", ".", ".", "?", "!"])
        if sc in ("kana", "hanzi"):
            end = {".": "。", "?": "？", "!": "！"}[end]
        return s + end

    def paragraph(self, rng, lang: str, n_sentences: int) -> str:
        return " ".join(self.sentence(rng, lang) for _ in range(n_sentences))
