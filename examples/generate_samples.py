"""Generate the invented demo chat exports under examples/exports (deterministic, stdlib only).

Every person, number, address and conversation here is made up. Phone numbers use the fictional 555 range and
addresses use the reserved example.com/.org/.net domains, so the PII masker has something safe to mask.
The sample user, Marco Bianchi, texts in a consistent style (lowercase bursts, "ahahah", "raga", "top",
"vabbè", "tipo", "bro", 😂/🔥, elongated words) so a small model can learn it and stylometry can spot him.
Every person also words the same thing in several ways (their own synonyms, openers and tails), so few replies
repeat verbatim and a held-out reply is mostly new text rather than a copy of a training one.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

SEED = 20210312
ME = "Marco Bianchi"
LUCA, SARA, GIORGIO, NUMBER = "Luca Ferri", "Sara Conti", "~ Giorgio", "+39 347 555 0199"
ELENA, GIULIA = "Elena Russo", "Giulia Neri"
GROUP = "Calcetto del giovedì"
LRM = "\u200e"

# --------------------------------------------------------------------------------------------------------------
# Vocabulary. A template slot {name} or {name2} draws from SLOTS[name]; within one exchange the same slot name
# always means the same value, and {friend} / {friend2} are guaranteed to differ.
# --------------------------------------------------------------------------------------------------------------

SLOTS = {
    "day": ["stasera", "domani sera", "sabato sera", "venerdì", "domenica", "giovedì sera", "sabato pomeriggio"],
    "time": ["alle 8", "alle 9", "alle 21", "alle 20:30", "alle 19", "verso le 10", "alle 22", "alle 18:30",
             "alle 19:45", "verso le 7", "alle 21:15", "dopo cena", "alle 17"],
    "place": ["da Gino", "al pub sotto casa", "in centro", "al Parco Sempione", "sui Navigli", "al cinema Odeon",
              "da Pippo", "al lago", "al bar della piazza", "alla Trattoria del Sole", "all'Osteria del Ponte",
              "al circolo", "in Darsena", "da Rita", "al bowling", "in Porta Romana", "al rooftop dell'hotel"],
    "food": ["pizza", "sushi", "kebab", "carbonara", "poke", "hamburger", "piadina", "ramen", "tacos", "lasagne",
             "risotto", "cinese", "indiano", "arrosticini", "focaccia", "gnocchi", "thai"],
    "show": ["la nuova serie", "quel film di fantascienza", "il documentario sugli squali", "la terza stagione",
             "la serie spagnola", "quel thriller coreano"],
    "friend": ["Chiara", "Davide", "Fede", "Ale", "Simo", "Marti", "Paolo", "Nico", "Bea", "Tommy", "Irene", "Matte",
               "Vale", "Gabri", "Lori", "Stefano", "Ludo"],
    "team": ["l'Inter", "il Milan", "la Juve", "l'Atalanta", "il Napoli", "la Roma"],
    "score": ["2-1", "3-0", "1-1", "2-2", "4-2", "3-1", "0-1"],
    "game": ["FIFA", "Fortnite", "Mario Kart", "Rocket League", "Among Us"],
    "thing": ["le chiavi", "il caricatore", "la felpa", "gli occhiali", "la borraccia", "l'ombrello", "le cuffie",
              "il portafoglio", "la giacca", "il libro", "lo zaino", "la sciarpa"],
    "excuse": ["domani lavoro presto", "ho una riunione alle 9", "sono distrutto", "devo finire una consegna",
               "ho mal di testa", "ho la cena dai miei"],
    "weather": ["piove da stamattina", "fa un caldo assurdo", "c'è un vento pazzesco", "fa freddissimo",
                "c'è un sole bellissimo"],
    "phone": ["347 555 0123", "+39 02 555 0147", "333 555 0188", "+39 348 555 0102", "02 555 0163"],
    "url": ["https://example.com/evento", "https://www.example.org/biglietti", "https://example.com/e/8841",
            "https://example.net/info?id=42", "https://www.example.com/prenota"],
    "num": ["3", "4", "5", "6"],
    "num_g": ["7", "8", "9"],
    "price": ["10 euro", "15 euro", "20 euro", "25 euro", "8 euro", "35 euro"],
    "concert": ["i Måneskin", "Calcutta", "un gruppo indie", "i Coldplay", "Cesare Cremonini"],
    "city": ["Torino", "Bologna", "Genova", "Verona", "Roma", "Firenze", "Trieste"],
    "street": ["via Roma 12", "via Garibaldi 8", "corso Como 21", "via Verdi 5", "piazza Duomo 3"],
    "day_en": ["tonight", "tomorrow", "on Saturday", "on Friday", "on Sunday"],
    "food_en": ["pizza", "sushi", "ramen", "burgers", "tacos", "brunch"],
    "place_en": ["da Gino", "the pub near the station", "that place on the Navigli", "Trattoria del Sole",
                 "the new place in via Verdi"],
    "show_en": ["the new season", "that Korean thriller", "a documentary about sharks", "the Spanish series"],
    "city_en": ["Turin", "Bologna", "Genoa", "Verona", "Florence", "Lake Como"],
    "time_en": ["at 8", "at 9", "around 7", "at 8:30", "at 6"],
}

# --------------------------------------------------------------------------------------------------------------
# Exchanges. One line per turn: "ROLE: text". M is Marco; O is the other person of a one-to-one chat; in the
# group A and B are the Italian speakers, S is Sara (who writes English) and N the number-only sender.
# '|' splits a turn into consecutive messages, '¶' is a newline inside one message, [a~b] picks one variant,
# a leading '?' makes the line optional, and <image>/<audio>/<video>/<sticker>/<gif> is a media message.
# --------------------------------------------------------------------------------------------------------------

EXCHANGES_IT = [
    """O: [Ehi!~Ciao Marco!~Ehilà!] Che fai {day}?
       M: [bro~boh~mah] niente di che|tu?
       O: Pensavo di andare {place}, ci sono anche {friend} e {friend2}. Vieni?
       M: siii top|a che ora
       O: {time}? Non troppo tardi che {excuse}.
       M: [perfetto~ok] ci sta|ci vediamo lì
       ?O: A dopo!""",
    """M: ho una fame assurda|{food} stasera?
       O: Dipende, dove? L'ultima volta {place} non era un granché.
       M: vabbè andiamo da gino che non sbaglia mai
       O: Va bene, prenoto io {time}. Quanti siamo?
       M: tipo {num}|forse si aggiunge anche {friend}
       O: Fatto, tavolo prenotato a nome tuo.
       M: [grande!!~top!!~sei un grande]""",
    """O: Hai visto la partita ieri?
       M: nooo me la sono persa|com'è finita
       O: {score}, {team} ha giocato benissimo nel secondo tempo.
       M: ma dai|[tipo~vabbè] la prossima la guardiamo insieme
       O: Sì, da me. Porto io le birre.
       M: [top~perfetto] 🔥""",
    """M: guarda qua ahahah
       M: <image>
       O: Haha ma dove l'hai trovata?
       M: me l'ha mandata {friend}|sto morendo ahahah
       ?O: Sei pessimo, però fa ridere.""",
    """O: Dove sei? Siamo già tutti qui.
       M: arrivo arrivo|[5~10] minuti|c'è un traffico assurdo
       O: Ok, intanto ti prendiamo da bere. Cosa vuoi?
       M: una birra media grazie|sei un grande""",
    """M: bro ho lasciato {thing} da te?
       O: Mi sa di sì, sono sul tavolo in sala.
       M: menomale|passo a recuperare tutto {day}
       O: Scrivimi prima, perché {day} potrei uscire.
       M: ok ok""",
    """O: Hai iniziato {show}?
       M: siii ieri sera|mi sono visto tipo 4 episodi di fila
       O: Anche io! Il finale del secondo episodio mi ha distrutto.
       M: ahahah assurdo|non spoilerare però
       O: Tranquillo, non dico niente.""",
    """O: Mi giri il numero dell'idraulico? Quello bravo.
       M: eccolo {phone}|digli che sei amico mio
       O: Grazie mille!
       M: figurati""",
    """O: Mi mandi il file della presentazione? La mia mail è {their_email}
       M: ok te lo mando appena arrivo a casa
       ?M: fatto|controlla anche lo spam
       O: Arrivato, grazie!""",
    """M: guarda che bello|{url}|ci andiamo?
       O: Carino! Quanto costa?
       M: tipo {price}|ne vale la pena
       O: Dai, prendiamo i biglietti.
       M: daiii 🔥""",
    """O: Che tempo fa lì?
       M: {weather}|[non ce la faccio più~vabbè]
       O: Qui uguale, ho rinunciato a uscire.
       M: giornata divano ahahah""",
    """O: Com'è andata la giornata?
       M: lunga|riunioni tutto il giorno|tu?
       O: Tutto bene, giornata tranquilla. Stasera mi riposo.
       M: fai bene|io tipo crollo alle 10""",
    """O: Ti ricordi che sabato è il compleanno di {friend}?
       M: nooo me ne ero dimenticato|meno male che ci sei
       O: Pensavo di fare un regalo tutti insieme, {price} a testa.
       M: top ci sto|cosa prendiamo
       O: Avevo pensato a due biglietti per {concert}.
       M: ahahah perfetto""",
    """M: e se il weekend andassimo a {city}?
       O: Mi piacerebbe! Treno o macchina?
       M: treno|tipo venerdì {time}|torniamo domenica
       O: Ok, guardo i biglietti e ti dico.
       O: Trovati a {price}, li prendo?
       M: siii vai|ti giro i soldi dopo""",
    """M: bro stasera {game}?
       O: Non posso, {excuse}. Facciamo domani?
       M: vabbè ok domani|ti distruggo però ahahah
       O: Haha vedremo.""",
    """O: Buongiorno! Dormito bene?
       M: buongiorno|poco ma vabbè
       O: Caffè alle 10 al bar sotto l'ufficio?
       M: ci sto""",
    """M: tutto ok?|non ti ho più sentito
       O: Sì, scusa, è stata una settimana pesante. Ti chiamo stasera?
       M: certo|quando vuoi""",
    """O: Mi consigli un posto per {food}? Stasera ho ospiti.
       M: vai {place}|tipo il migliore della zona|il numero è {phone}
       O: Perfetto, chiamo subito. Grazie!""",
    """O: Allora, riassumo:¶- ritrovo {time} sotto casa mia¶- porta {thing}¶- pranzo al sacco
       M: ok capo ahahah|ci sono""",
    """M: lista spesa per stasera:¶birre¶patatine¶ghiaccio
       O: Prendo io il ghiaccio, il resto lo porti tu?
       M: [yes~si] tranquillo""",
    """M: non sai cosa mi ha detto {friend}|ahahah
       O: Cosa? Racconta!
       M: tipo che si trasferisce a {city}|per amore
       O: Ma dai! Non ci credo.
       M: giuro|assurdo""",
    """O: È stata una serata bellissima, grazie ancora!
       M: grazie a te|dobbiamo rifarlo presto
       O: Assolutamente, la prossima volta organizzo io.""",
    """O: Oggi sto male, credo di avere la febbre.
       M: nooo|ti serve qualcosa?
       O: No grazie, ho tutto. Mi metto a letto.
       M: ok riposati|scrivimi se hai bisogno""",
    """M: domani corsa alle 7?
       O: Alle 7? Facciamo almeno alle 8.
       M: vabbè ok alle 8|ma niente scuse
       O: Promesso.""",
    """O: Escono i biglietti per {concert}! {url}
       M: daiii|prendiamoli subito
       O: Presi! Due posti in piedi, {price} l'uno.
       M: grande|ti devo un favore""",
    """M: ciao|che fai
       O: Niente, sono sul divano. Tu?
       M: uguale ahahah""",
    """O: Ti ho fatto il bonifico per la cena dell'altra sera.
       M: ricevuto|grazie""",
    """O: <image>
       O: Guarda che tramonto da qui!
       M: wow|dove sei
       O: {place}, si sta benissimo.
       M: che invidia|la prossima volta vengo anche io""",
    """O: Hai sentito che chiude il bar della piazza?
       M: nooo|ma perché
       O: Pare che il proprietario vada in pensione.
       M: vabbè peccato|era il migliore""",
    """M: <audio>
       O: Non posso ascoltare ora, scrivimi.
       M: niente ti dicevo che {day} non ci sono|ho una cena di lavoro
       O: Ok, nessun problema. Ci sentiamo domani.""",
    """O: Mi presti la macchina {day}?
       M: si tranquillo|però fai benzina ahahah
       O: Ovvio! Grazie mille.""",
    """M: stasera cucino io|{food}
       O: Tu che cucini? Devo preoccuparmi?
       M: ahahah fidati|sarà top
       O: Allora porto il vino.""",
    """O: Sei a casa? Ti devo lasciare un pacco che è arrivato da me per sbaglio.
       M: si ci sono|citofona pure
       ?M: terzo piano""",
    """O: Ho finalmente prenotato le vacanze! Una settimana a {city} ad agosto.
       M: ma topppp|ti invidio tantissimo
       O: Vieni a trovarmi qualche giorno, c'è posto.
       M: siii|tipo nel weekend|fammi sapere le date""",
    """M: bro mi serve un consiglio
       O: Dimmi pure.
       M: regalo per {friend}|budget tipo {price}|idee?
       O: Un libro o una pianta vanno sempre bene. Oppure una cena fuori.
       M: la cena è un'idea top|grazie""",
    """O: Mi scrivi l'indirizzo per stasera?
       M: {street}|citofono bianchi|terzo piano
       O: Perfetto, arrivo {time}.""",
    """M: <sticker>
       O: Haha questo sticker è perfetto per te.
       M: ahahah lo so""",
    """O: Domanda seria: {food} o {food2}?
       M: {food} tutta la vita|che domande sono
       O: Lo sapevo, sei prevedibile.""",
    """M: <video>
       M: guarda che roba ahahah|{friend} al karaoke
       O: Non ci posso credere! Mandamene altri.
       M: ahahah ne ho tipo dieci""",
    """M: raga|cioè bro|ho appena visto {friend} in tram
       O: E quindi?
       M: niente ahahah|volevo dirtelo""",
]

EXCHANGES_EN = [
    """O: Hey Marco! Are you free {day_en}?
       M: yesss|what's the plan bro
       O: A few of us are going to {place_en} {time_en}. Want to join?
       M: top|i'm in
       O: Great, see you there!""",
    """O: Do you know a good place for {food_en} around here?
       M: bro {place_en} is top|trust me
       O: Thanks! I'll try it this weekend.""",
    """M: did you see the video i sent|ahahah
       O: Yes, I can't stop watching it.
       M: the best""",
    """O: Sorry, I can't make it tonight. I have to finish a report for work.
       M: nooo|vabbè next time
       O: Definitely. Save me a spot next week!""",
    """O: How was your weekend?
       M: top|went to {city_en} with friends|tipo the best weekend ever
       O: Sounds amazing! I stayed home and watched {show_en}.
       M: ahahah also good""",
    """O: My number changed by the way, it's {phone}.
       M: ok saved|thanks""",
    """O: Is it going to rain tomorrow? Should we cancel?
       M: nah it's fine|tipo a few clouds
       O: Okay, let's keep the plan then.""",
    """M: bro can you send me that link again
       O: Sure, here it is: {url}
       M: thanks!!""",
    """O: Happy birthday Marco!! Hope you have a great day.
       M: thanks!!|🔥🔥""",
    """O: <gif>
       O: That's me on Monday mornings.
       M: ahahah|same""",
    """O: Quick question: what time is the dinner {day_en}?
       M: {time_en}|don't be late ahahah
       O: I'm never late!
       M: ahahah sure""",
    """O: I'm so tired today, I barely slept.
       M: same bro|coffee?
       O: Yes please. Usual place in ten minutes?
       M: yesss""",
    """M: bro look at this
       M: <image>
       O: Where is that? It looks beautiful.
       M: {city_en}|last summer|i miss it""",
]

GROUP_IT = [
    """A: Ragazzi, giovedì ci siamo tutti? Servono 10 persone.
       M: io ci sono|🔥
       B: Presente.
       S: I'm in!
       A: Siamo a {num_g}, mancano ancora un paio di persone.
       M: raga chiedo a {friend}|forse viene""",
    """M: raga chi prenota il campo
       A: Ci penso io, chiamo il centro sportivo al {phone}.
       A: Fatto: campo 3, giovedì {time}.
       M: top""",
    """B: Bella partita ieri, anche se abbiamo perso {score}.
       M: raga abbiamo giocato malissimo ahahah|io soprattutto
       A: Haha il tuo autogol resterà nella storia.
       M: vabbè dai|la prossima vinciamo
       ?S: Next time I'm playing in defence, promise.""",
    """A: Chi porta le pettorine?
       M: io|cioè no le ho lasciate da {friend}|vabbè le recupero
       B: Ok, grazie Marco.""",
    """A: Pizza dopo la partita?
       M: siii
       S: Yes please!
       B: Ci sto, prenoto da Gino per {num_g}.
       M: top raga|🔥🔥""",
    """A: Giovedì danno pioggia forte, annulliamo?
       M: nooo|raga giochiamo lo stesso
       B: Con la pioggia io non vengo, scusate.
       A: Ok, rimandiamo a venerdì {time}.
       M: vabbè ok""",
    """A: Ricordatevi di darmi {price} per il campo.
       M: ti faccio il bonifico stasera
       B: Anche io, grazie.
       S: Sending it now!""",
    """B: <image>
       B: La squadra dei campioni!
       M: ahahah raga che foto|io sembro morto""",
    """S: Marco, do you still have my water bottle from last week?
       M: yes bro|i'll bring it thursday
       S: Thanks!""",
    """A: Ho trovato questo torneo amatoriale, che dite? {url}
       M: raga facciamolo|tipo subito
       B: Quanto costa l'iscrizione?
       A: {price} a testa, si gioca a giugno.
       M: ci sto!!""",
    """B: Qualcuno ha visto {team} ieri sera?
       A: Sì, {score}. Che partita.
       M: raga io l'ho vista al bar|urlavano tutti ahahah
       B: Haha immagino.""",
    """M: raga sono in ritardo|iniziate senza di me
       A: Tranquillo, ti aspettiamo per le squadre.
       M: arrivo tipo in 10 minuti""",
    """A: Chi gioca in porta giovedì? Facciamo a turno.
       M: non io ahahah
       B: Ci sto io il primo tempo.
       S: I can do the second half.
       M: top raga""",
    """S: What time do we meet on Thursday?
       A: {time}, al solito campo.
       M: {time} bro|don't be late ahahah
       S: Haha I'm always on time!""",
    """B: Mi sono fatto male alla caviglia, salto la prossima.
       M: nooo|riprenditi bro
       A: Guarisci presto!
       S: Get well soon!""",
    """A: Squadre per giovedì:¶Bianchi: Marco, Sara, {friend}, Teo¶Verdi: Luca, Giorgio, {friend2}, Leo
       M: raga squadra fortissima|vi distruggiamo ahahah
       B: Vedremo giovedì!""",
    """M: raga stasera birra?|dopo la partita
       B: Io ci sono.
       A: Solo una, domani lavoro presto.
       M: seee solo una ahahah""",
]

# Exchanges used once each in the group: the number-only sender joins, plays, and leaves.
NUMBER_JOINS = """N: Ciao a tutti! Sono Paolo, l'amico di Luca. Giovedì posso venire a giocare?
                  M: certo|benvenuto
                  A: Certo Paolo, ti aspettiamo alle 21."""
NUMBER_THANKS = """N: Grazie per la partita ragazzi, siete forti. Il mio numero ce l'avete se serve uno!
                   M: grazie a te bro|alla prossima"""

# Each person's ways of saying the same thing: a key (a whole word or phrase, as the templates write it) is
# replaced, each time independently, by one of its variants. Marco's keys are matched after lowercasing.
MARCO_PHRASES = {
    "top": ["top", "toppp", "spettacolo", "una bomba", "fighissimo", "stupendo", "una figata"],
    "assurdo": ["assurdo", "pazzesco", "allucinante", "incredibile", "roba da matti", "surreale"],
    "tipo": ["tipo", "praticamente", "più o meno", "boh tipo", "circa"],
    "bro": ["bro", "fra", "zio", "frate", "amo"],
    "raga": ["raga", "ragaa", "gente", "ragazzi", "regaz"],
    "ok": ["ok", "okk", "okay", "va bene", "d'accordo", "ci sta"],
    "vabbè": ["vabbè", "vabbe", "vabbuò", "pazienza", "amen", "e vabbè"],
    "grazie": ["grazie", "grazie mille", "grazieee", "thx", "grazie davvero", "ti adoro"],
    "perfetto": ["perfetto", "perfettoo", "ottimo", "benissimo", "fantastico"],
    "ci sto": ["ci sto", "ci sono", "conta su di me", "io ci sono", "presente"],
    "siii": ["siii", "sisi", "certo", "ovvio", "assolutamente", "ma certo"],
    "nooo": ["nooo", "noo", "ma no", "oddio", "no dai", "ma noo"],
    "comunque": ["comunque", "cmq", "ad ogni modo", "in ogni caso"],
    "arrivo": ["arrivo", "sto arrivando", "quasi lì", "sono per strada"],
    "grande": ["grande", "grandissimo", "mitico", "sei un mito", "idolo"],
    "niente": ["niente", "nulla", "zero", "niente di niente"],
    "giuro": ["giuro", "davvero", "sul serio", "te lo giuro", "giuro su tutto"],
    "daiii": ["daiii", "daje", "andiamo", "vamos", "forza"],
    "che invidia": ["che invidia", "invidia pura", "beato te", "che fortuna"],
    "ci vediamo lì": ["ci vediamo lì", "ci becchiamo lì", "a dopo", "ci vediamo là"],
    "fai bene": ["fai bene", "bravo", "giusto così", "hai ragione"],
    "sei un grande": ["sei un grande", "sei un mito", "ti devo una birra", "ti amo fra"],
    "minuti": ["minuti", "min", "minuti max", "minuti giuro"],
    "the best": ["the best", "amazing", "so good", "legendary"],
    "thanks": ["thanks", "thx", "thank u", "ty", "thanks a lot"],
    "same": ["same", "me too", "same here", "literally me"],
    "yesss": ["yesss", "yep", "sure", "of course", "yess obviously"],
}
MARCO_OPENERS = {"it": ["oh", "allora", "senti", "ma", "eh", "ah", "beh", "ecco"], "en": ["oh", "well", "so", "ah"]}
PEOPLE_PHRASES = {
    LUCA: {"Perfetto": ["Perfetto", "Ottimo", "Benissimo"], "Grazie": ["Grazie", "Grazie mille", "Ti ringrazio"],
           "Ok": ["Ok", "Va bene", "D'accordo"], "Sì": ["Sì", "Certo", "Esatto"], "Haha": ["Haha", "Ahah"]},
    SARA: {"Thanks": ["Thanks", "Thank you", "Thanks a lot"], "Great": ["Great", "Awesome", "Perfect"],
           "Ok": ["Ok", "Okay", "Sure"], "Sì": ["Sì", "Yes", "Sì sì"]},
    GIORGIO: {"Ok": ["Ok", "Va bene", "Perfetto"], "Grazie": ["Grazie", "Grazie ragazzi"], "Sì": ["Sì", "Certo"]},
    NUMBER: {},
    ELENA: {"Perfetto": ["Perfetto", "Ottimo", "Fantastico"], "Grazie": ["Grazie", "Grazie mille", "Grazie tesoro"],
            "Ok": ["Ok", "Va benissimo", "Perfetto"], "Sì": ["Sì", "Certo", "Assolutamente"],
            "Thanks": ["Thanks", "Thank you so much"], "Great": ["Great", "Lovely", "Perfect"]},
    GIULIA: {"Perfetto": ["Perfetto", "Ottimo", "Top"], "Grazie": ["Grazie", "Grazie mille", "Grazieee"],
             "Ok": ["Ok", "Okay", "Va bene"], "Sì": ["Sì", "Certo", "Ovvio"], "Ma dai": ["Ma dai", "Davvero", "No!"]},
}

PEOPLE_STYLE = {
    LUCA: {"laughs": ["haha", "hehe"], "emoji": ["👍", "😄", "⚽"], "rate": 0.12},
    SARA: {"laughs": ["haha", "lol"], "emoji": ["😊", "🙈", "🙌"], "rate": 0.15},
    GIORGIO: {"laughs": ["haha"], "emoji": ["💪", "👍"], "rate": 0.08},
    NUMBER: {"laughs": ["haha"], "emoji": ["🙂"], "rate": 0.0},
    ELENA: {"laughs": ["haha", "lol"], "emoji": ["😅", "❤️", "✨"], "rate": 0.15},
    GIULIA: {"laughs": ["haha", "xD"], "emoji": ["😘", "🙈", "💕"], "rate": 0.18},
}
THEIR_EMAIL = {LUCA: "luca.ferri@example.com", SARA: "sara.conti@example.com",
               ELENA: "elena.russo@example.org", GIULIA: "giulia.neri@example.com"}

MARCO_ELONGATE = {"si": "i", "dai": "i", "no": "o", "ok": "k", "grande": "e", "ciao": "o", "grazie": "e",
                  "buongiorno": "o", "top": "p", "yes": "s", "nice": "e", "bello": "o", "vai": "i"}
MARCO_TAILS = {"it": ["ahahah", "vabbè", "top", "😂😂", "🔥🔥", "comunque", "tipo boh", "che ridere", "mamma mia",
                      "non ci credo", "vabbè dai", "sto morendo", "ciaooo"],
               "en": ["ahahah", "bro", "top", "😂😂", "🔥", "lol", "crazy", "no way"]}
LAUGH = re.compile(r"\bahah\w*")
MARCO_HYPED = re.compile(r"\b(top|si+|dai+|yes+|ci sto|perfetto|grande|daje|andiamo|vai|facciamolo)\b")
MARCO_SOBER = re.compile(r"\b(no+|male|riposati|riprenditi|peccato|scusa|sorry)\b")
MEDIA_TOKEN = re.compile(r"^<(image|audio|video|sticker|gif)>$")


@dataclass
class Msg:
    """One message of the invented conversations, before any platform formatting."""

    time: datetime
    sender: str | None
    text: str = ""
    kind: str = "text"  # text, media, system, deleted
    media: str | None = None
    edited: bool = False
    forwarded_from: str | None = None


# --------------------------------------------------------------------------------------------------------------
# Writing styles
# --------------------------------------------------------------------------------------------------------------

def rephrase(rng: random.Random, phrases: dict[str, list[str]], text: str) -> str:
    """Replace every whole-word occurrence of a key of `phrases` by one of its variants (no chaining)."""
    if not phrases:
        return text
    keys = sorted(phrases, key=len, reverse=True)
    pattern = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, keys)) + r")(?!\w)")
    return pattern.sub(lambda match: rng.choice(phrases[match.group(1)]), text)


def marco_style(rng: random.Random, text: str) -> str:
    """Rewrite one of Marco's messages in his texting style."""
    text = rephrase(rng, MARCO_PHRASES, text.lower().rstrip("."))
    text = LAUGH.sub(lambda _: "ah" * rng.randint(2, 5), text)
    if rng.random() < 0.35:
        words = text.split(" ")
        for i, word in enumerate(words):
            if word in MARCO_ELONGATE:
                words[i] = word + MARCO_ELONGATE[word] * rng.randint(2, 4)
                break
        text = " ".join(words)
    if text.endswith("!") and not text.endswith("!!") and rng.random() < 0.5:
        text += "!"
    elif text[-1:].isalpha() and rng.random() < 0.05:
        text += "!!"
    if text[-1:].isalpha() and not MARCO_SOBER.search(text) and rng.random() < 0.2:
        emoji = "😂" if "ahah" in text else "🔥" if MARCO_HYPED.search(text) else rng.choice("😂🔥")
        text += " " + emoji * rng.choice([1, 1, 2, 3])
    return text


def other_style(rng: random.Random, sender: str, text: str) -> str:
    """Proper capitalization and punctuation, plus the sender's own laugh and emoji habits."""
    style = PEOPLE_STYLE[sender]
    text = rephrase(rng, PEOPLE_PHRASES[sender], text)
    text = text[:1].upper() + text[1:]
    if text[-1:].isalnum() and "\n" not in text and "://" not in text.rsplit(" ", 1)[-1]:
        text += "."
    roll = rng.random()
    if roll < style["rate"] / 2:
        text = f"{text} {rng.choice(style['laughs'])}"
    elif roll < style["rate"]:
        text = f"{text} {rng.choice(style['emoji'])}"
    return text


# --------------------------------------------------------------------------------------------------------------
# Conversations
# --------------------------------------------------------------------------------------------------------------

def fill_slots(rng: random.Random, text: str, chosen: dict[str, str], extra: dict[str, str]) -> str:
    """Resolve [a~b] variants and {slot} names; a slot name keeps its value for the whole exchange."""
    text = re.sub(r"\[([^\]]+)\]", lambda m: rng.choice(m.group(1).split("~")), text)

    def pick(match: re.Match) -> str:
        key = match.group(1)
        if key in extra:
            return extra[key]
        if key not in chosen:
            base = key.rstrip("0123456789")
            taken = {value for name, value in chosen.items() if name.rstrip("0123456789") == base}
            chosen[key] = rng.choice([value for value in SLOTS[base] if value not in taken])
        return chosen[key]

    return re.sub(r"\{(\w+)\}", pick, text)


def play_exchange(rng: random.Random, template: str, cast: dict[str, str], lang: str) -> list[tuple[str, str]]:
    """Turn a template into (sender, text-or-media-token) messages, with Marco's bursts and styling."""
    chosen: dict[str, str] = {}
    out: list[tuple[str, str]] = []
    for raw in template.strip().splitlines():
        line = raw.strip()
        if line.startswith("?"):
            if rng.random() < 0.5:
                continue
            line = line[1:]
        role, text = line.split(": ", 1)
        sender = cast[role]
        extra = {"their_email": THEIR_EMAIL.get(sender, "info@example.com")}
        parts = fill_slots(rng, text, chosen, extra).split("|")
        if sender == ME and not MEDIA_TOKEN.match(parts[0]) and rng.random() < 0.25:
            parts[0] = f"{rng.choice(MARCO_OPENERS[lang])} {parts[0]}"
        for part in parts:
            part = part.replace("¶", "\n")
            if MEDIA_TOKEN.match(part):
                out.append((sender, part))
            elif sender == ME:
                out.append((sender, marco_style(rng, part)))
            else:
                out.append((sender, other_style(rng, sender, part)))
        if sender == ME and rng.random() < 0.1:
            out.append((ME, marco_style(rng, rng.choice(MARCO_TAILS[lang]))))
    return out


def reply_delay(rng: random.Random, same_sender: bool) -> timedelta:
    """Seconds for a burst, seconds to minutes for a reply, now and then a longer pause."""
    if same_sender:
        return timedelta(seconds=rng.randint(3, 40))
    roll = rng.random()
    if roll < 0.6:
        return timedelta(seconds=rng.randint(8, 120))
    if roll < 0.92:
        return timedelta(seconds=rng.randint(120, 900))
    return timedelta(seconds=rng.randint(900, 3600))


def session_starts(rng: random.Random, count: int, start: datetime, end: datetime) -> list[datetime]:
    """Random session start times over the span, mostly in the afternoon and evening."""
    hours = list(range(7, 24))
    weights = [1, 3, 3, 2, 2, 3, 5, 3, 2, 3, 4, 6, 7, 8, 8, 6, 3]
    days = (end - start).days
    starts = [
        (start + timedelta(days=rng.randrange(days))).replace(
            hour=rng.choices(hours, weights)[0], minute=rng.randrange(60), second=rng.randrange(60))
        for _ in range(count)
    ]
    return sorted(starts)


class Deck:
    """Draws exchanges: a language by weight, then that language's templates in shuffled, cycling order."""

    def __init__(self, rng: random.Random, sources: dict[str, tuple[float, list[str]]]) -> None:
        self.rng = rng
        self.sources = sources
        self.queues: dict[str, list[str]] = {lang: [] for lang in sources}

    def draw(self) -> tuple[str, str]:
        langs = list(self.sources)
        lang = self.rng.choices(langs, [self.sources[name][0] for name in langs])[0]
        if not self.queues[lang]:
            self.queues[lang] = self.rng.sample(self.sources[lang][1], len(self.sources[lang][1]))
        return lang, self.queues[lang].pop()


def build_chat(rng: random.Random, deck: Deck, cast_for, target: int,
               start: datetime, end: datetime) -> list[list[Msg]]:
    """Sessions of 1-3 exchanges (at least 4 messages) until `target` messages, spread over [start, end)."""
    scripts: list[list[tuple[str, str]]] = []
    total = 0
    while total < target:
        script: list[tuple[str, str]] = []
        exchanges = rng.choice([1, 1, 2, 2, 3])
        while exchanges > 0 or len(script) < 4:
            lang, template = deck.draw()
            script += play_exchange(rng, template, cast_for(rng, lang), lang)
            exchanges -= 1
        scripts.append(script)
        total += len(script)
    sessions: list[list[Msg]] = []
    not_before = start
    for when, script in zip(session_starts(rng, len(scripts), start, end), scripts):
        when = max(when, not_before)
        session: list[Msg] = []
        previous = None
        for sender, text in script:
            if previous is not None:
                when += reply_delay(rng, sender == previous)
            media = MEDIA_TOKEN.match(text)
            session.append(Msg(when, sender, "", "media", media.group(1)) if media else Msg(when, sender, text))
            previous = sender
        sessions.append(session)
        not_before = when + timedelta(minutes=rng.randint(45, 300))
    return sessions


def add_edits_and_deletions(rng: random.Random, messages: list[Msg], edits: int, deletions: int) -> None:
    """Mark a few text messages as edited and turn a few into deleted ones (at least one each side)."""
    texts = [m for m in messages if m.kind == "text"]
    for message in rng.sample(texts, edits):
        message.edited = True
    mine = [m for m in texts if m.sender == ME and not m.edited]
    theirs = [m for m in texts if m.sender != ME and not m.edited]
    for message in rng.sample(mine, deletions // 2) + rng.sample(theirs, deletions - deletions // 2):
        message.kind, message.text = "deleted", ""


def flatten(sessions: list[list[Msg]]) -> list[Msg]:
    return [message for session in sessions for message in session]


def one_to_one(rng: random.Random, other: str, english: float = 0.0):
    """Deck and cast for a one-to-one chat: Italian exchanges, and English ones with weight `english`."""
    deck = Deck(rng, {"it": (1.0 - english, EXCHANGES_IT), "en": (english, EXCHANGES_EN)})
    return deck, lambda _rng, _lang: {"M": ME, "O": other}


def group_cast(rng: random.Random, lang: str) -> dict[str, str]:
    a, b = rng.sample([LUCA, GIORGIO], 2)
    return {"M": ME, "A": a, "B": b, "S": SARA, "O": SARA, "N": NUMBER}


def group_chat(rng: random.Random, start: datetime, end: datetime, target: int) -> list[Msg]:
    """The iOS group: system lines, Italian banter, Sara in English, the number-only sender twice."""
    deck = Deck(rng, {"it": (0.75, GROUP_IT), "en": (0.25, EXCHANGES_EN)})
    sessions = build_chat(rng, deck, group_cast, target, start + timedelta(hours=1), end)
    created = start
    system = [Msg(created, None, "I messaggi e le chiamate sono crittografati end-to-end. Nessuno al di fuori di "
                                 "questa chat, nemmeno WhatsApp, può leggerli o ascoltarli.", "system"),
              Msg(created, None, f"Hai creato il gruppo “{GROUP}”", "system")]
    for offset, name in enumerate([LUCA, SARA, "+39 333 555 0172"], start=1):
        system.append(Msg(created + timedelta(seconds=offset * 7), None, f"Hai aggiunto {name}", "system"))
    system.append(Msg(created + timedelta(minutes=3), None,
                      f"{LUCA} ha cambiato l'immagine di questo gruppo", "system"))
    joins, thanks = len(sessions) // 3, len(sessions) // 3 + 2
    for index, template in ((joins, NUMBER_JOINS), (thanks, NUMBER_THANKS)):
        anchor = sessions[index][-1].time + timedelta(minutes=rng.randint(30, 90))
        script = play_exchange(rng, template, group_cast(rng, "it"), "it")
        extra = [Msg(anchor, None, f"{LUCA} ha aggiunto {NUMBER}", "system")] if template is NUMBER_JOINS else []
        when = anchor
        for sender, text in script:
            when += reply_delay(rng, False)
            extra.append(Msg(when, sender, text))
        if template is NUMBER_THANKS:
            extra.append(Msg(when + timedelta(minutes=5), None, f"{NUMBER} è uscito", "system"))
        sessions[index] += extra
    messages = system + sorted(flatten(sessions), key=lambda m: m.time)
    add_edits_and_deletions(rng, messages, edits=30, deletions=2)
    return messages


# --------------------------------------------------------------------------------------------------------------
# Platform formats
# --------------------------------------------------------------------------------------------------------------

EDITED_IT = "<Questo messaggio è stato modificato>"
IOS_MEDIA = {"image": "immagine omessa", "video": "video omesso", "audio": "audio omesso",
             "sticker": "sticker omesso", "gif": "GIF omessa"}
IOS_ATTACHMENT = {"image": "PHOTO", "video": "VIDEO", "audio": "AUDIO", "sticker": "STICKER", "gif": "GIF"}
IOS_EXTENSION = {"image": "jpg", "video": "mp4", "audio": "opus", "sticker": "webp", "gif": "mp4"}


def whatsapp_android(messages: list[Msg]) -> str:
    """`dd/mm/yyyy, HH:MM - Name: text`, Italian locale, media omitted."""
    lines = []
    for m in messages:
        stamp = m.time.strftime("%d/%m/%Y, %H:%M")
        if m.kind == "system":
            lines.append(f"{stamp} - {m.text}")
            continue
        if m.kind == "media":
            body = "<Media omessi>"
        elif m.kind == "deleted":
            body = "Hai eliminato questo messaggio" if m.sender == ME else "Questo messaggio è stato eliminato"
        else:
            body = f"{m.text} {EDITED_IT}" if m.edited else m.text
        lines.append(f"{stamp} - {m.sender}: {body}")
    return "\n".join(lines) + "\n"


def whatsapp_ios(messages: list[Msg], rng: random.Random) -> str:
    """`[dd/mm/yy, HH:MM:SS] Name: text`, Italian locale; U+200E marks system and media lines."""
    lines = []
    attachment = 30
    for index, m in enumerate(messages):
        stamp = m.time.strftime("[%d/%m/%y, %H:%M:%S]")
        if m.kind == "system":
            mark = "" if index == 0 else LRM
            lines.append(f"{mark}{stamp} {GROUP}: {LRM}{m.text}")
        elif m.kind == "media":
            attachment += 1
            if rng.random() < 0.25:
                kind = IOS_ATTACHMENT[m.media]
                name = f"{attachment:08d}-{kind}-{m.time:%Y-%m-%d-%H-%M-%S}.{IOS_EXTENSION[m.media]}"
                body = f"<allegato: {name}>"
            else:
                body = IOS_MEDIA[m.media]
            lines.append(f"{LRM}{stamp} {m.sender}: {LRM}{body}")
        elif m.kind == "deleted":
            body = "Hai eliminato questo messaggio." if m.sender == ME else "Questo messaggio è stato eliminato."
            lines.append(f"{LRM}{stamp} {m.sender}: {LRM}{body}")
        else:
            body = f"{m.text} {LRM}{EDITED_IT}" if m.edited else m.text
            lines.append(f"{stamp} {m.sender}: {body}")
    return "\n".join(lines) + "\n"


def rome_to_utc_offset(local: datetime) -> timedelta:
    """Europe/Rome offset for 2021, without relying on the system time-zone database."""
    summer = datetime(2021, 3, 28, 2) <= local < datetime(2021, 10, 31, 3)
    return timedelta(hours=2 if summer else 1)


def unix_seconds(local: datetime) -> int:
    return int((local - rome_to_utc_offset(local)).replace(tzinfo=timezone.utc).timestamp())


ENTITY = re.compile(r"(?P<link>(?:https?://|www\.)\S+?(?=[.,!?]*(?:\s|$)))|(?P<email>[\w.+-]+@[\w-]+\.\w+)|(?P<phone>\+?\d[\d ]{7,}\d)")


def telegram_text(text: str) -> tuple[str | list, list[dict]]:
    """Telegram's `text` (plain string, or list mixing strings and entity objects) and `text_entities`."""
    parts: list = []
    position = 0
    for match in ENTITY.finditer(text):
        if match.start() > position:
            parts.append(text[position:match.start()])
        parts.append({"type": match.lastgroup, "text": match.group()})
        position = match.end()
    if not parts:
        return text, ([{"type": "plain", "text": text}] if text else [])
    if position < len(text):
        parts.append(text[position:])
    entities = [p if isinstance(p, dict) else {"type": "plain", "text": p} for p in parts]
    return parts, entities


TELEGRAM_IDS = {ME: "user248811394", ELENA: "user519203847"}


def telegram_export(sessions: list[list[Msg]], rng: random.Random) -> dict:
    """Telegram Desktop `result.json` for one personal chat."""
    rows: list[dict] = []
    photo = sticker = voice = video = 0
    by_time: list[tuple[Msg, dict]] = []
    for session in sessions:
        for m in session:
            row: dict = {"id": len(rows) + 1, "type": "service" if m.kind == "system" else "message",
                         "date": m.time.isoformat(), "date_unixtime": str(unix_seconds(m.time))}
            if m.kind == "system":
                seconds = rng.randint(40, 1500)
                row.update({"actor": m.sender, "actor_id": TELEGRAM_IDS[m.sender], "action": "phone_call",
                            "duration_seconds": seconds, "discard_reason": "hangup"})
                text = ""
            else:
                if m.edited:
                    later = m.time + timedelta(seconds=rng.randint(20, 240))
                    row.update({"edited": later.isoformat(), "edited_unixtime": str(unix_seconds(later))})
                row.update({"from": m.sender, "from_id": TELEGRAM_IDS[m.sender]})
                if m.forwarded_from:
                    row["forwarded_from"] = m.forwarded_from
                if by_time and m.kind == "text" and by_time[-1][0].sender != m.sender and rng.random() < 0.05:
                    row["reply_to_message_id"] = by_time[-1][1]["id"]
                text = m.text
                if m.media == "image":
                    photo += 1
                    row.update({"photo": f"photos/photo_{photo}@{m.time:%d-%m-%Y_%H-%M-%S}.jpg",
                                "photo_file_size": rng.randint(60_000, 400_000), "width": 1280, "height": 960})
                elif m.media == "sticker":
                    sticker += 1
                    row.update({"file": f"stickers/sticker ({sticker}).webp",
                                "file_size": rng.randint(15_000, 40_000),
                                "thumbnail": f"stickers/sticker ({sticker}).webp_thumb.jpg",
                                "thumbnail_file_size": rng.randint(3_000, 8_000), "media_type": "sticker",
                                "sticker_emoji": rng.choice(["😂", "🔥", "👍", "😎"]), "width": 512, "height": 512})
                elif m.media == "audio":
                    voice += 1
                    row.update({"file": f"voice_messages/audio_{voice}@{m.time:%d-%m-%Y_%H-%M-%S}.ogg",
                                "file_size": rng.randint(8_000, 90_000), "media_type": "voice_message",
                                "mime_type": "audio/ogg", "duration_seconds": rng.randint(3, 45)})
                elif m.media in ("video", "gif"):
                    video += 1
                    row.update({"file": f"video_files/video_{video}@{m.time:%d-%m-%Y_%H-%M-%S}.mp4",
                                "file_size": rng.randint(200_000, 4_000_000),
                                "media_type": "animation" if m.media == "gif" else "video_file",
                                "mime_type": "video/mp4", "duration_seconds": rng.randint(2, 30),
                                "width": 720, "height": 1280})
            row["text"], row["text_entities"] = telegram_text(text)
            rows.append(row)
            by_time.append((m, row))
    return {"name": ELENA, "type": "personal_chat", "id": int(TELEGRAM_IDS[ELENA][4:]), "messages": rows}


def mojibake(value):
    """Facebook's export encoding: UTF-8 bytes read back as latin-1, recursively."""
    if isinstance(value, str):
        return value.encode("utf-8").decode("latin-1")
    if isinstance(value, list):
        return [mojibake(v) for v in value]
    if isinstance(value, dict):
        return {k: mojibake(v) for k, v in value.items()}
    return value


MESSENGER_THREAD = "inbox/giulia_abc123"


def messenger_reaction(rng: random.Random, text: str) -> str:
    """A reaction that fits the message: laughing at jokes, otherwise a heart or a thumbs-up."""
    if "ahah" in text or "haha" in text.lower() or "😂" in text:
        return "😆"
    if "nooo" in text or "male" in text:
        return "😢"
    return rng.choice(["❤", "❤", "👍", "😮"])


def messenger_messages(messages: list[Msg], rng: random.Random) -> list[dict]:
    """Facebook Messenger message objects, newest first."""
    rows = []
    for m in messages:
        ms = unix_seconds(m.time) * 1000 + rng.randrange(1000)
        row: dict = {"sender_name": m.sender, "timestamp_ms": ms}
        if m.kind == "deleted":
            row.update({"type": "Generic", "is_unsent": True})
            rows.append(row)
            continue
        if m.kind == "media":
            base = f"messages/{MESSENGER_THREAD}"
            if m.media == "image":
                row["photos"] = [{"uri": f"{base}/photos/{rng.randrange(10**14, 10**15)}_n.jpg",
                                  "creation_timestamp": ms // 1000}]
            elif m.media == "sticker":
                row["sticker"] = {"uri": f"messages/stickers_used/{rng.randrange(10**14, 10**15)}_n.png"}
            elif m.media == "gif":
                row["gifs"] = [{"uri": f"{base}/gifs/{rng.randrange(10**14, 10**15)}_n.gif"}]
            elif m.media == "audio":
                row["audio_files"] = [{"uri": f"{base}/audio/audioclip{ms}.mp4", "creation_timestamp": ms // 1000}]
            else:
                row["content"] = f"{m.sender.split()[0]} sent an attachment."
        else:
            row["content"] = m.text
        if rng.random() < 0.08:
            other = GIULIA if m.sender == ME else ME
            row["reactions"] = [{"reaction": messenger_reaction(rng, m.text), "actor": other}]
        urls = re.findall(r"https?://\S+", m.text)
        if urls:
            row.update({"share": {"link": urls[0]}, "type": "Share", "is_unsent": False})
        else:
            row.update({"type": "Generic", "is_unsent": False})
        rows.append(row)
    return rows[::-1]


def messenger_file(rows: list[dict]) -> dict:
    return {"participants": [{"name": GIULIA}, {"name": ME}], "messages": rows, "title": GIULIA,
            "is_still_participant": True, "thread_type": "Regular", "thread_path": MESSENGER_THREAD,
            "magic_words": []}


# --------------------------------------------------------------------------------------------------------------
# Putting it together
# --------------------------------------------------------------------------------------------------------------

def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def generate(out: Path) -> list[Path]:
    """Write every sample export under `out`; returns the written paths."""
    written = []

    rng = random.Random(SEED)
    deck, cast = one_to_one(rng, LUCA)
    start = datetime(2021, 3, 12, 21, 4)
    messages = flatten(build_chat(rng, deck, cast, 1950, start, datetime(2021, 11, 10)))
    add_edits_and_deletions(rng, messages, edits=35, deletions=2)
    encryption = ("I messaggi e le chiamate sono crittografati end-to-end. Nessuno al di fuori di questa chat, "
                  "nemmeno WhatsApp, può leggerli o ascoltarli. Tocca per saperne di più.")
    messages.insert(0, Msg(messages[0].time, None, encryption, "system"))
    path = out / "whatsapp" / f"WhatsApp Chat with {LUCA}.txt"
    write_text(path, whatsapp_android(messages))
    written.append(path)

    rng = random.Random(SEED + 1)
    messages = group_chat(rng, datetime(2021, 3, 20, 18, 31, 5), datetime(2021, 11, 12), 1550)
    path = out / "whatsapp" / f"WhatsApp Chat with {GROUP}.txt"
    write_text(path, whatsapp_ios(messages, rng))
    written.append(path)

    rng = random.Random(SEED + 2)
    deck, cast = one_to_one(rng, ELENA, english=0.3)
    sessions = build_chat(rng, deck, cast, 590, datetime(2021, 4, 15), datetime(2021, 11, 5))
    add_edits_and_deletions(rng, flatten(sessions), edits=15, deletions=0)
    for session in rng.sample(sessions, 6):
        caller = rng.choice([ME, ELENA])
        session.append(Msg(session[-1].time + timedelta(minutes=rng.randint(1, 4)), caller, kind="system"))
    forwarded = rng.choice(sessions[len(sessions) // 2:])
    first = forwarded[0].time - timedelta(minutes=2)
    forwarded.insert(0, Msg(first, ME, "⚠️ Allerta meteo gialla per temporali su Milano e provincia dalle 14 "
                                       "di oggi. Dettagli su https://example.org/meteo/allerta",
                            forwarded_from="Meteo Milano"))
    forwarded.insert(1, Msg(first + timedelta(seconds=9), ME, "oggi si bagna ahahah"))
    path = out / "telegram" / "result.json"
    write_text(path, json.dumps(telegram_export(sessions, rng), ensure_ascii=False, indent=1) + "\n")
    written.append(path)

    rng = random.Random(SEED + 3)
    deck, cast = one_to_one(rng, GIULIA)
    messages = flatten(build_chat(rng, deck, cast, 400, datetime(2021, 3, 1), datetime(2021, 10, 30)))
    add_edits_and_deletions(rng, messages, edits=0, deletions=2)
    rows = mojibake(messenger_messages(messages, rng))
    for number, part in ((1, rows[:len(rows) // 2]), (2, rows[len(rows) // 2:])):
        path = out / "messenger" / MESSENGER_THREAD / f"message_{number}.json"
        write_text(path, json.dumps(messenger_file(part), ensure_ascii=True, indent=2) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "exports",
                        help="output folder (default: examples/exports next to this script)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)


if __name__ == "__main__":
    main()
