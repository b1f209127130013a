"""Write the invented English sample: WhatsApp (Android) exports of "Sam Rivera" and three contacts.

    python examples/generate_english_sample.py          # rewrites examples/english/

Sam texts nothing like an assistant. To friends: lowercase, no apostrophes, "ngl"/"tbh"/"rn", 😭 and 💀, often
two or three short messages in a row. To Mum: full sentences, capitals, "Love you x". The contacts write ordinary
punctuated sentences. Every name, number and event is invented; the file is seeded, so it is reproducible.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

OUT = Path(__file__).resolve().parent / "english"
ME = "Sam Rivera"
SEED = 11
CONVERSATIONS = {"Priya Shah": 170, "Jake Miller": 150, "Mum": 110}

SLOTS = {
    "place": ["the pub", "Nando's", "the cinema", "the park", "Priya's", "the gym", "the station", "the market",
              "the beach", "the new taco place", "the climbing wall", "the library"],
    "time": ["at 7", "around 8", "after work", "tomorrow", "on friday", "this weekend", "tonight", "at noon",
             "on sunday", "later"],
    "thing": ["the match", "the gig", "the quiz", "the party", "the exam", "the interview", "the film", "the trip",
              "brunch", "the bbq", "the wedding", "the new flat"],
    "food": ["pizza", "curry", "tacos", "sushi", "burgers", "ramen", "a roast"],
}

# Each intent: what a friend writes, what Sam answers (friends), what Mum writes, what Sam answers Mum.
FRIEND = {
    "plan": (["Are you free {time}? Thinking {place}.", "Fancy {place} {time}?", "Shall we do {thing} {time}?",
              "We're going to {place} {time}, are you in?", "Want to get {food} {time}?"],
             ["yesss im in", "ok bet", "omg yes", "cant {time} ngl", "maybe?? ill let u know", "go on then",
              "wait who else is coming", "im so down", "yes pls", "ugh i cant im skint rn", "only if theres {food}"]),
    "howwas": (["How was {thing}?", "How did {thing} go?", "Did you enjoy {thing}?", "How was {place} last night?"],
               ["honestly unreal", "it was a mess 💀", "so good ngl", "mid tbh", "dont even ask 😭",
                "actually amazing", "i cried a bit not gonna lie", "too long but fun", "never again lmao"]),
    "late": (["I'm running a bit late, sorry!", "Where are you?", "Are you nearly here?",
              "I'm outside {place}.", "Just got to {place}, where are you?"],
             ["omw", "2 mins", "literally running", "im here where r u", "sorry sorry sorry", "bus died 😭",
              "nearly there", "look left", "coming down now"]),
    "news": (["I got the job!", "Guess who I saw at {place}?", "I've finally booked {thing}.",
              "My landlord is putting the rent up again.", "I think I'm getting a dog.", "I passed!"],
             ["NO WAY", "stoppp thats huge", "omg who", "thats so grim", "yesss proud of u", "wait what",
              "ur joking", "ok thats actually sick", "😭😭 noooo", "finally lol"]),
    "ask": (["Can you send me the photos from {thing}?", "Do you still have my charger?",
             "Could you get the tickets for {thing}?", "Have you got the address for {place}?",
             "Can I borrow your black jacket {time}?"],
            ["yeah ill send them later", "i think so ill check", "on it", "ye", "sent", "oh god i forgot",
             "course", "idk where it is tbh", "give me 5"]),
}
MUM = {
    "plan": (["Are you coming for {food} on Sunday?", "Will you be home {time}?", "Shall I pick you up from the station?",
              "Dad wants to know if you're coming {time}."],
             ["Yes, I'll be there on Sunday. Love you x", "I can't this week, sorry Mum. Next weekend? x",
              "Yes please, that would be lovely x", "I'll be home around 7. Don't wait for me for dinner x",
              "Tell Dad yes! Looking forward to it x"]),
    "howwas": (["How did {thing} go, love?", "How was your week?", "How are you feeling today?"],
               ["It went really well, thank you! I'll tell you all about it on Sunday x",
                "Busy but good. Work has been a lot this week x", "Much better today, thanks Mum x",
                "Not bad at all. I'm just tired. Love you x"]),
    "ask": (["Did you remember to call your gran?", "Have you sent the forms yet?", "Do you need anything from the shops?",
             "Can you send me the address for {place}?"],
            ["Yes, I called her yesterday. She sounded well x", "Not yet, I'll do it tonight. Promise x",
             "No thank you, I'm all sorted x", "I'll send it now x"]),
    "news": (["Your aunt is visiting next week.", "We've booked the holiday!", "The cat got out again.",
              "Dad has finally fixed the shed."],
             ["Oh lovely, I'll try to come over x", "That's brilliant news! Where are you going? x",
              "Oh no! Is she back now? x", "About time! Tell him well done x"]),
}
FRIEND_FOLLOW = ["Perfect, see you then.", "Ha, fair enough.", "Okay, I'll let the others know.",
                 "Sounds good to me.", "Honestly same.", "Great, thank you!", "Let me know either way."]
FRIEND_TAGS = ["", "", "", " ngl", " tbh", " lol", " 😭", " 💀", " rn"]
MUM_FOLLOW = ["Lovely, see you then.", "Okay love, take care.", "That's good to hear.", "Don't work too hard!"]
MUM_BACK = ["Thanks Mum x", "Will do x", "Love you too x", "Speak soon x"]


def fill(rng: random.Random, template: str) -> str:
    return template.format(**{key: rng.choice(values) for key, values in SLOTS.items()})


def friend_reply(rng: random.Random, pool: list[str]) -> list[str]:
    """One to three short lowercase messages, sometimes with a tag."""
    burst = [fill(rng, rng.choice(pool)).lower() + rng.choice(FRIEND_TAGS)]
    if rng.random() < 0.35:
        burst.append(fill(rng, rng.choice(pool)).lower())
    if rng.random() < 0.1:
        burst.append(rng.choice(["😭", "lmao", "anyway", "ok", "💀"]))
    return burst


def conversation(rng: random.Random, contact: str) -> list[tuple[str, str]]:
    """(sender, text) pairs: a few exchanges opened by the contact (sometimes by Sam)."""
    table, mum = (MUM, True) if contact == "Mum" else (FRIEND, False)
    lines: list[tuple[str, str]] = []
    if not mum and rng.random() < 0.2:
        lines.append((ME, rng.choice(["u up", "hello??", "ok so", "random but"])))
    for _ in range(rng.randint(1, 3)):
        asks, answers = table[rng.choice(sorted(table))]
        lines.append((contact, fill(rng, rng.choice(asks))))
        if mum:
            lines.append((ME, fill(rng, rng.choice(answers))))
        else:
            lines.extend((ME, text) for text in friend_reply(rng, answers))
        if rng.random() < 0.5:
            lines.append((contact, rng.choice(MUM_FOLLOW if mum else FRIEND_FOLLOW)))
            if mum:
                lines.append((ME, rng.choice(MUM_BACK)))
            else:
                lines.extend((ME, text) for text in friend_reply(rng, ["ok", "yep", "love that", "see u", "bet",
                                                                         "perfect", "ye", "haha ok"]))
    return lines


def export(rng: random.Random, contact: str, count: int) -> str:
    day = datetime(2024, 1, 5, 9, 0) + timedelta(days=rng.randint(0, 20))
    out = [f"{day:%d/%m/%Y}, {day:%H:%M} - Messages and calls are end-to-end encrypted. No one outside of this chat, "
           "not even WhatsApp, can read or listen to them. Tap to learn more."]
    for _ in range(count):
        day += timedelta(days=rng.randint(1, 3), minutes=rng.randint(0, 600))
        moment = day.replace(hour=rng.randint(8, 21), minute=rng.randint(0, 59))
        for sender, text in conversation(rng, contact):
            moment += timedelta(minutes=rng.randint(0, 4), seconds=rng.randint(5, 59))
            out.append(f"{moment:%d/%m/%Y}, {moment:%H:%M} - {sender}: {text}")
    return "\n".join(out) + "\n"


def main() -> None:
    rng = random.Random(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    for contact, count in CONVERSATIONS.items():
        (OUT / f"WhatsApp Chat with {contact}.txt").write_text(export(rng, contact, count), encoding="utf-8")
    print(f"wrote {len(CONVERSATIONS)} exports to {OUT}")


if __name__ == "__main__":
    main()
