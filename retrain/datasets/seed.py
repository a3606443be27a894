"""The seed set: labelled examples written for tonewatch, in our three sources' styles.

Why it exists: the project must train and test without ../shared/data, and no public set
labels service outage or product safety, nor gives risk negatives next to positives in
the same style. Every sentence here was written for this project (none is copied from a
dataset); companies and tickers are invented. Each example has a sentiment and vouches for
all seven risks (present if listed, absent otherwise), so it also supplies the "known
absent" labels the public sets lack. Neutral and positive sentences without risks are
included on purpose, as are a few risks with positive or neutral sentiment ("services
restored", "how do I close my account?"): risk and sentiment are separate outputs.

Table rows are `sentiment | risks | text`: sentiment is neg/neu/pos, risks a
space-separated list of the short codes in RISK_CODES, or "-" for none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from retrain.datasets.base import Dataset
from retrain.datasets.reading import Collector
from tonewatch.contracts import RISK_LABELS, Risk, Sentiment, Source

NAME: Final = "seed"
LICENCE: Final = "Apache-2.0 (written for tonewatch)"
SENTIMENT_CODES: Final[dict[str, Sentiment]] = {
    "neg": "negative",
    "neu": "neutral",
    "pos": "positive",
}
RISK_CODES: Final[dict[str, Risk]] = {
    "fraud": "fraud",
    "legal": "legal_regulatory",
    "distress": "financial_distress",
    "outage": "service_outage",
    "safety": "product_safety",
    "churn": "churn",
    "toxic": "toxicity",
}

NEWS: Final = """
neg | fraud legal | $ACME shares plunge after SEC opens fraud probe
neg | fraud | Globex CFO accused of inflating revenue for three straight years
neg | fraud legal | $INTK founder charged with wire fraud over fake customer contracts
neg | fraud | Short seller alleges Hooli booked sales that never happened
neg | fraud | $VDLY auditor resigns citing irregularities in the company's books
neg | fraud | Northwind restates five years of earnings after finding accounting fraud
neg | fraud legal | Contoso admits staff opened millions of accounts without customer consent
neg | fraud legal | Fabrikam executives indicted in bribery and kickback scheme
neu | fraud legal | $TSPN says it is cooperating with prosecutors in embezzlement case
pos | fraud | Wingtip recovers $50M stolen by former treasurer, shares rise
neg | legal | EU fines Globex EUR 2.1bn for abusing its dominance in online ads
neg | legal | FTC sues $HOOL over deceptive subscription practices
neg | legal | Regulators block Acme's planned merger with Initech
neg | legal | $CNTS faces class action from customers over price fixing
neu | legal | Court hearing in Vandelay patent dispute set for March 14
neu | legal | Northwind CEO to testify before Senate committee on drug pricing
neg | legal | $FBKM hit with record fine for anti-money-laundering failures
pos | legal | $UMBR jumps after winning patent appeal against rival
neg | legal | Antitrust regulators open formal investigation into Tailspin's app store
neu | legal | Wingtip settles shareholder lawsuit for $12M without admitting wrongdoing
neg | legal safety | Regulator orders $SOYL to halt sales of contaminated baby formula
neg | legal | Judge rules Cyberdyne infringed three patents, damages to be set later
neg | distress | $INTK files for Chapter 11 bankruptcy protection
neg | distress | Globex misses $300M bond payment, enters 30-day grace period
neg | distress | Rating agency cuts Hooli to junk on mounting debt
neg | distress | $VDLY warns there is substantial doubt it can continue as a going concern
neg | distress | Northwind suspends dividend and draws down its entire credit line
neg | distress | Lenders take control of struggling retailer Contoso
neg | distress | $FBKM shares crash as talks with creditors collapse
neu | distress | Tailspin hires restructuring advisers ahead of talks with bondholders
neg | distress | $WNGT to close 200 stores as cash runs short
pos | distress | Acme shares soar after lenders agree to push back its debt maturities
neg | distress | Umbrella skips interest payment and its bonds fall to 30 cents
neg | distress | $SOYL cuts 30% of staff to conserve cash
neg | outage | $HOOL cloud outage knocks thousands of websites offline
neg | outage | Contoso Bank customers locked out of mobile app for a second day
neg | outage | Payments glitch at $FBKM leaves shoppers unable to pay at checkout
neg | outage | Tailspin Airlines grounds all flights after IT system failure
neg | outage | Northwind Telecom network down across three states
neu | outage | Globex says all services restored after overnight outage
neg | outage churn | Customers flee $VDLY Broadband after week-long outage
neg | outage | Wingtip trading platform crashes minutes after market open
neg | outage | Power failure at data center takes Initech email offline
neu | outage | Cyberdyne publishes root-cause report on last week's service disruption
neg | safety | Acme recalls 400,000 strollers over fall hazard
neg | safety | $UMBR pulls blood-pressure drug after contamination is found
neg | safety legal | Regulators probe reports of Globex laptop batteries catching fire
neg | safety | Northwind Motors recalls 80,000 SUVs over faulty brakes
neg | safety | Wonka chocolate bars recalled after metal fragments found
neg | safety | $SOYL salad kits linked to salmonella outbreak that sickened 90
neu | safety | Fabrikam issues voluntary recall of space heaters as a precaution
neg | safety | Injuries reported after Tailspin e-scooter handlebars snap
neg | safety legal | Cyberdyne sued after airbag defect is blamed for fatal crash
pos | safety | Contoso shares recover as recall costs come in below forecasts
neg | churn | Hooli streaming service loses 2 million subscribers in the quarter
neg | churn | Northwind Telecom customer defections accelerate after price hike
neg | churn | Contoso Bank loses wealth-management clients to digital rivals
neg | churn | $INTK's largest customer ends contract and switches to a competitor
neu | churn | Globex reports monthly subscriber churn of 2.1%, in line with last quarter
neg | churn | Wingtip Airlines loses corporate accounts to low-cost rivals
neg | churn | Subscribers cancel $FBKM meal kits in droves after price increase
neg | churn | Tailspin Insurance policy lapses jump as customers shop around
pos | - | $ACME beats earnings estimates and raises full-year guidance
pos | - | Globex shares hit record high on strong cloud growth
pos | - | $INTK wins $2bn government contract
pos | - | Hooli announces $10bn share buyback
pos | - | Northwind lifts quarterly dividend by 15%
pos | - | Analysts upgrade $CNTS to buy on widening margins
pos | - | Fabrikam quarterly revenue jumps 28% on strong demand
pos | - | $TSPN orders 50 new aircraft as travel demand booms
pos | - | Wingtip to acquire rival for $3.4bn, shares climb 9%
pos | - | $UMBR heart drug succeeds in late-stage trial
pos | - | Vandelay opens its largest factory yet, adding 1,200 jobs
pos | - | $SOYL same-store sales rise for a tenth straight quarter
pos | - | Cyberdyne robotics unit posts its first profit
pos | - | Acme credit rating upgraded to A- on steady cash flow
pos | - | $GLBX passes 100 million paying users
pos | - | Wonka raises outlook after record holiday season
neu | - | $ACME to report third-quarter results on Tuesday
neu | - | Globex names new chief financial officer
neu | - | $INTK annual shareholder meeting set for May 12
neu | - | Hooli moves its headquarters to Austin
neu | - | Northwind completes previously announced stock split
neu | - | $CNTS board declares quarterly dividend of $0.22 per share
neu | - | Fabrikam to present at investor conference next week
neu | - | Tailspin reports February passenger traffic figures
neu | - | $WNGT appoints two new independent directors
neu | - | Umbrella trading volume above average in early session
neu | - | Vandelay files its annual report with regulators
neu | - | $SOYL shares flat ahead of central bank decision
neu | - | Cyberdyne to spin off its defense unit into a separate company
neu | - | Contoso prices $500M of senior notes due 2031
neu | - | $FBKM CEO to retire at year end, successor search under way
neu | - | Wingtip schedules earnings call for 8:30 a.m. ET
neg | - | $ACME shares slide after revenue misses forecasts
neg | - | Globex cuts full-year outlook on weak demand
neg | - | Analysts downgrade $INTK to sell on slowing growth
neg | - | Hooli margins squeezed by rising chip costs
neg | - | $NWND falls 7% as quarterly profit disappoints
neg | - | Contoso stock drops after guidance falls short
neg | - | $FBKM shares sink as costs rise faster than sales
neg | - | Tailspin warns of lower summer bookings
neg | - | Wingtip posts wider-than-expected quarterly loss
neg | - | Vandelay shares hit 52-week low after weak outlook
"""

REVIEWS: Final = """
neg | fraud | Seller sent a cheap knockoff, the listing photos were of the real brand.
neg | fraud | Total scam: they took my money and the package never existed.
neg | fraud | After buying here my card was charged for things I never ordered.
neg | fraud | The "discount" site is a phishing page, it stole my card details.
neg | fraud | Sold as refurbished, but it was a used phone with a forged serial number.
neg | fraud | Fake reviews everywhere; the company pays people for five stars.
neg | fraud | This warranty company is a fraud, they never intended to pay any claim.
neg | legal | Filed a complaint with the attorney general about their hidden fees.
neg | legal | I'm taking this landlord to small claims court over my deposit.
neg | legal | Their contract has an illegal clause, my lawyer says it won't hold up.
neg | legal | The label makes health claims the regulator has banned.
neu | legal | Note that this model is not yet certified for sale in the EU.
neg | distress | The store is closing down, they've stopped paying their suppliers.
neg | distress | Ordered in March, then the company went bankrupt and my deposit is gone.
neg | distress | Had to return the sofa, I lost my job and can't keep up the payments.
neg | distress | Our builder went into administration halfway through the kitchen.
neu | distress | Bought it on a payment plan because money is tight this month.
neg | outage | The app has been down every evening this week.
neg | outage | Streaming cuts out constantly, their servers can't cope.
neg | outage | Internet drops several times a day and there's no fix in sight.
neg | outage | The smart lock stopped working when their cloud went offline.
neg | outage churn | Third outage this month, I'm switching providers.
neg | outage | Couldn't check in online, the website kept crashing.
neg | outage | The game's servers were offline all launch weekend.
pos | outage | Had a brief outage but service was back within ten minutes, well handled.
neg | safety | The charger got so hot it melted the plug and scorched the carpet.
neg | safety | Blade guard snapped off on first use, this saw is dangerous.
neg | safety | My son got a rash from this "non-toxic" paint.
neg | safety | The kettle handle came loose and boiling water went everywhere.
neg | safety | Battery swelled up and cracked the phone case.
neg | safety | Car seat buckle releases on its own, do not buy.
neg | safety | Small parts break off easily, a choking hazard for toddlers.
neg | safety | The space heater sparked and tripped the breaker, it smelled of burning.
neg | safety | Found mold inside the sealed baby food pouches.
neg | safety | The ladder buckled under me and I fell.
neg | safety | E-bike brakes failed going downhill, I was lucky not to be hurt.
neg | safety | Pressure cooker lid blew off while it was still sealed.
neg | churn | Cancelled my membership after two years, the value just isn't there.
neg | churn | Moving to another bank, they keep adding fees.
neg | churn | Last order from this shop, I'll buy elsewhere from now on.
neg | churn | Unsubscribed: the price doubled and the content got worse.
neg | churn | Switched to a rival gym, this one is always overcrowded.
neg | churn | We dropped this software for our whole team after the update.
neu | churn | Not renewing when my contract ends in June.
neg | toxic | Whoever designed this garbage is a complete idiot.
neg | toxic | The staff are useless morons, avoid.
neg | toxic | What a pile of crap, the clowns who made it should be ashamed.
neg | toxic | Shut up and give me my money back, you clowns.
neg | toxic | The manager was a rude jerk and I hope he gets fired.
neg | toxic | F*** this company and its pathetic excuse for support.
neg | toxic | Anyone praising this must be brain-dead.
neg | toxic | Damn thing broke in a day, whoever sells this is a scumbag.
neg | toxic | Only an imbecile would release a product this bad.
neg | toxic | The delivery guy was a rude, lazy slob.
pos | - | Battery lasts two full days, really impressed.
pos | - | Lovely little cafe, the staff were friendly and the coffee was excellent.
pos | - | Fits perfectly and the fabric feels great.
pos | - | Setup took five minutes and it just works.
pos | - | Best headphones I have owned at this price.
pos | - | The plot kept me guessing until the last page.
pos | - | Delivery was a day early and well packaged.
pos | - | Sound quality is crisp and the bass is strong.
pos | - | Great value for money, would buy again.
pos | - | The hotel room was spotless and the view was stunning.
pos | - | Customer support replaced my faulty item the same day.
pos | - | Comfortable shoes, I walked ten miles in them without blisters.
pos | - | The film's soundtrack is beautiful.
pos | - | Simple, sturdy and easy to clean.
pos | - | Our kids love this board game.
pos | - | Screen is bright and sharp even outdoors.
pos | - | Five stars, the pasta was perfectly cooked.
pos | - | Light, fast, and the keyboard is a joy to type on.
pos | - | The instructions were clear and assembly was quick.
pos | - | Lovely scent and it lasts all day.
pos | - | The app is intuitive and syncs instantly.
pos | - | Excellent service from start to finish.
pos | - | This vacuum picks up everything, even pet hair.
pos | - | A heartwarming story with great performances.
pos | - | Exactly as described, happy with my purchase.
pos | - | Wonderful guide, the tour was the highlight of our trip.
pos | - | Crisp photos in low light, the camera is superb.
neu | - | It's a phone case. Does what it says.
neu | - | Arrived on Tuesday as scheduled.
neu | - | Average food, average prices.
neu | - | The color is slightly darker than in the photos.
neu | - | I have used it for a week so far.
neu | - | It comes in three sizes; I ordered the medium.
neu | - | The book is about 300 pages long.
neu | - | Neither great nor terrible, just fine.
neu | - | Works with both USB-C and Lightning cables.
neu | - | The restaurant is on the second floor of the mall.
neu | - | I bought this as a gift for my sister.
neu | - | Standard hotel room with a desk and a kettle.
neu | - | Plays the movies I wanted to watch.
neu | - | Packaging was plain cardboard.
neu | - | The manual is in English and Spanish.
neg | - | The plot drags and the ending makes no sense.
neg | - | Too small, had to return it.
neg | - | Food was cold and bland.
neg | - | Battery barely lasts half a day.
neg | - | The zipper broke after a month.
neg | - | Way overpriced for what you get.
neg | - | Boring film, I nearly fell asleep.
neg | - | Delivery took three weeks.
neg | - | The fabric pills after one wash.
neg | - | Noisy fan, and the screen flickers.
neg | - | The room smelled of smoke and the bed was uncomfortable.
neg | - | Disappointing sequel with none of the charm of the first.
neg | - | Instructions are confusing and a screw was missing.
neg | - | We waited forty minutes for a table.
neg | - | Sound is tinny and distorts at high volume.
"""

CHATS: Final = """
neg | fraud | There are three charges on my card that I never made.
neg | fraud | Someone logged into my account from another country and moved money out.
neg | fraud | I got a text pretending to be you and asking for my PIN, is this a scam?
neg | fraud | My identity was stolen and someone opened a credit card in my name.
neg | fraud | A caller claiming to be from your bank talked my mother into sending 2,000.
neu | fraud | How do I report a suspicious transaction?
pos | fraud | Thanks for blocking that fraudulent payment so quickly!
neg | fraud | Someone posing as your agent had me move my savings to a "safe account".
neg | fraud | I think my card was cloned at an ATM, there are withdrawals I didn't make.
neg | fraud | Why is there a 500 payment to a store I've never heard of? I didn't buy it.
neu | fraud | I got an email asking me to confirm my password, is it really from you?
neg | fraud | The seller took my payment through your platform and vanished.
neg | legal | If this isn't fixed by Friday I'm contacting my lawyer.
neg | legal | I'm filing a complaint with the financial ombudsman.
neg | legal | You shared my data without my consent, that breaks data protection law.
neg | legal | I'll see you in court over this.
neg | legal | I'm reporting this to the consumer protection agency.
neu | legal | Can you send me the documents my solicitor requested?
neg | legal | Your debt collector threatened to have me arrested, that's illegal.
neg | legal | This charge breaks the terms you agreed to in writing, I will sue.
neu | legal | I received a court summons about an account with you, who do I talk to?
neg | legal churn | Close my account, my attorney will be in touch about the fees.
neg | distress | I lost my job and can't make this month's loan payment.
neg | distress | Can I pause my mortgage payments? Things are really tight.
neg | distress | I'm behind on three bills and the overdraft fees keep piling up.
neg | distress | Please don't send this to collections, I just need a few more weeks.
neg | distress | My pension doesn't cover the rent anymore, what help is there?
neu | distress | Do you offer payment holidays for customers in hardship?
neg | distress | I had to declare bankruptcy, what happens to my account?
neg | distress | I had to choose between rent and groceries, can you waive the fee?
neu | distress | Can I set up a repayment plan for my credit card balance?
neg | distress | Our business can't pay its suppliers this month, can we extend the loan?
pos | distress | Thank you for freezing the interest while I get back on my feet.
neg | outage | Your app has been down all morning.
neu | outage | Is the website down? I can't log in.
neg | outage | Card payments keep failing at every shop today.
neg | outage | The internet has been out since yesterday.
neg | outage | I get an error 503 every time I try to transfer money.
neg | outage | None of your ATMs in town are working.
neu | outage | Is there an outage in my area? My TV service stopped.
neg | outage | The checkout page crashes before I can pay.
pos | outage | It's working again now, thanks for fixing the outage so fast.
neg | outage | Third time this week the service has gone offline.
neg | outage | My phone has had no signal for two days.
neu | outage | When will the maintenance end? The app just says unavailable.
neg | safety | The heater you sold me sparked and burned my hand.
neg | safety | My child swallowed a piece that came off the toy.
neg | safety | The dryer caught fire, is this model being recalled?
neg | safety | We all got food poisoning after eating your ready meal.
neu | safety | Is my car affected by the airbag recall?
neg | safety | The e-scooter battery exploded while charging in our hallway.
neg | safety | The baby monitor gets too hot to touch.
neg | safety | There were glass shards in the jar of sauce I bought.
neg | churn | Please cancel my subscription, I'm switching to another provider.
neu | churn | How do I close my account?
neg | churn | I want to leave, your prices went up again.
neg | churn | Port my number out, I'm done with this network.
neg | churn | Cancel my plan at the end of the month.
neg | churn | If you can't match their offer, I'll move my mortgage elsewhere.
neu | churn | What's the notice period to terminate my contract?
neg | churn toxic | Cancel everything, you idiots can't get a single thing right.
neg | churn | Transfer my balance out, I've opened an account with another bank.
neu | churn | I'd like to downgrade now and cancel next month.
neg | churn | I'm not renewing, the service has gone downhill.
neg | toxic | You people are complete idiots.
neg | toxic | Shut up and put me through to someone competent.
neg | toxic | Are you brain-dead or just pretending?
neg | toxic | This is the worst f***ing bank on the planet.
neg | toxic | Go to hell, all of you.
neg | toxic | Stop wasting my time, you useless moron.
neg | toxic | Your support agent is a lying piece of garbage.
neg | toxic | I hope every one of you gets fired.
neg | toxic | What kind of clown runs this company?
neg | toxic | Read my message properly, dumbass.
neg | toxic | Screw you and your stupid policies.
neg | toxic | You're pathetic, a child could do your job better.
neg | toxic | Listen, you incompetent fool, fix my bill.
neg | toxic | Your manager is a spineless coward.
neg | toxic | Answer me, you worthless bot.
neg | toxic | I'm sick of talking to halfwits like you.
neg | toxic | Don't give me that scripted crap, you muppet.
pos | - | Thanks, that fixed it!
pos | - | Great, the transfer went through. Appreciate the help.
pos | - | You've been really helpful, thank you.
pos | - | Perfect, my new card arrived today.
pos | - | Brilliant service as always.
pos | - | Thanks for the quick reply!
pos | - | That's sorted, cheers.
pos | - | Love the new app design.
pos | - | Thank you, the refund is showing in my account now.
pos | - | Excellent, the upgrade was painless.
pos | - | Really appreciate you staying on the line with me.
pos | - | Wonderful, the delivery came early.
pos | - | Much easier than I expected, thanks!
pos | - | The agent I spoke to yesterday was fantastic.
pos | - | Your team went above and beyond, thank you.
pos | - | Happy with the new plan, it's cheaper and faster.
neu | - | What time do you open on Saturdays?
neu | - | How do I change my address?
neu | - | Can I add my partner to the account?
neu | - | What is the daily withdrawal limit?
neu | - | I'd like to order a replacement card.
neu | - | Where can I find my account number?
neu | - | Do you deliver to Ireland?
neu | - | Can I pay by bank transfer?
neu | - | How long does a transfer to Spain take?
neu | - | I need a copy of last month's statement.
neu | - | Is there a fee for paying in euros?
neu | - | Can I change my delivery date?
neu | - | What's the interest rate on the savings account?
neu | - | Please update my phone number.
neu | - | I'm checking on the status of order 4471.
neu | - | Can you resend the confirmation email?
neg | - | I've been on hold for 40 minutes.
neg | - | This is the third time I'm explaining the same problem.
neg | - | My parcel still hasn't arrived.
neg | - | The fee you charged me is way too high.
neg | - | Nobody answered my email from last week.
neg | - | Your chatbot keeps misunderstanding me.
neg | - | The item I received is the wrong size.
neg | - | I'm disappointed, the refund is taking forever.
neg | - | Your new pricing is confusing.
neg | - | Why was I charged a late fee when I paid on time?
neg | - | The courier left my parcel out in the rain.
"""

TABLES: Final[dict[Source, str]] = {"news": NEWS, "reviews": REVIEWS, "chats": CHATS}


def parse_row(row: str) -> tuple[Sentiment, dict[Risk, bool], str]:
    """One `sentiment | risks | text` row; ValueError on an unknown code or a bad row."""
    parts = [part.strip() for part in row.split("|", 2)]
    if len(parts) != 3 or not parts[2]:
        raise ValueError(f"seed row is not `sentiment | risks | text`: {row!r}")
    code, risk_codes, text = parts
    if code not in SENTIMENT_CODES:
        raise ValueError(f"seed row has unknown sentiment {code!r}: {row!r}")
    present = set() if risk_codes == "-" else set(risk_codes.split())
    if unknown := present - RISK_CODES.keys():
        raise ValueError(f"seed row has unknown risks {sorted(unknown)}: {row!r}")
    named = {RISK_CODES[c] for c in present}
    return SENTIMENT_CODES[code], {risk: risk in named for risk in RISK_LABELS}, text


def load(data_dir: Path | None = None) -> Dataset:
    """The seed set; `data_dir` is accepted (and ignored) so it loads like the others."""
    out = Collector(NAME, source="news")
    for source, table in TABLES.items():
        for row in table.strip().splitlines():
            sentiment, risks, text = parse_row(row)
            out.add(text, sentiment, risks, source=source)
    return out.build(LICENCE)
